//! Stages as definitions: [`def::StageDef`] (one per stage: input,
//! eligibility, template, grammar, parser, record slot, sampling, key
//! fingerprint) and [`def::StagePlan`] (all of a config's stages in input
//! order); [`settings`]: the typed config section of each built-in stage;
//! [`custom`]: stages defined in the config (`[stage.NAME]`).

pub mod custom;
pub mod def;
pub mod settings;
