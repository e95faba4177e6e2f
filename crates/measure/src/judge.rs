//! Pairwise-judging statistics (the numbers `backforth eval` reports): strict
//! parsing of a judge's verdict, both-order aggregation to cancel position
//! bias, win rate with ties counted half and its standard error, and a
//! length-controlled win rate.
//!
//! Length control follows AlpacaEval 2 (Dubois et al. 2024, "Length-Controlled
//! AlpacaEval", arXiv:2404.04475): a logistic model of the preference with a
//! term in the tanh-squashed, standardised length difference, read off at a
//! length difference of zero. AlpacaEval's full GLM also has a per-instruction
//! difficulty term estimated across many models; with one pair of output sets
//! that term is not identifiable, so the model here is
//!
//! `P(model preferred | i) = σ(β₀ + β₁ · tanh(Δᵢ / sd(Δ)))`, `Δᵢ = len(model output) − len(baseline output)`
//!
//! fitted by maximum likelihood on the fractional preferences (Newton's
//! method, a 1e-4 ridge on β₁ so perfectly length-separated data stays
//! finite); the length-controlled win rate is `100 · σ(β₀)`.
//!
//! Written here because it is the method's evaluation: the fit is 2
//! parameters and no maintained Rust crate implements this model.

use serde::{Deserialize, Serialize};

/// A judge's verdict on one ordered pair (output A shown first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    A,
    B,
    Tie,
}

/// Parse a verdict strictly: the last non-empty line must be
/// `Preferred: A`, `Preferred: B` or `Preferred: tie` (the judge template's
/// required last line; case of `tie` ignored). Errors: the reason, for the
/// record's parse status.
pub fn parse_verdict(raw: &str) -> Result<Verdict, String> {
    let last = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .last()
        .ok_or("empty judge output")?;
    let v = last
        .strip_prefix("Preferred:")
        .ok_or_else(|| format!("last line is not `Preferred: A|B|tie`: {last:?}"))?
        .trim();
    match v {
        "A" => Ok(Verdict::A),
        "B" => Ok(Verdict::B),
        t if t.eq_ignore_ascii_case("tie") => Ok(Verdict::Tie),
        other => Err(format!("unknown verdict {other:?} (want A, B or tie)")),
    }
}

/// Preference for the model (0 = baseline wins, 0.5 = tie, 1 = model wins)
/// from the two orders: `model_first` judged with the model's output as A,
/// `model_second` with it as B. `None` for an order that failed to parse;
/// with one order missing the other is used alone, with both missing `None`.
pub fn pair_preference(model_first: Option<Verdict>, model_second: Option<Verdict>) -> Option<f64> {
    mean_of_orders(
        model_first.map(|v| verdict_preference(v, true)),
        model_second.map(|v| verdict_preference(v, false)),
    )
}

/// Mean of the two orders' preferences; one alone when the other is missing.
pub fn mean_of_orders(first: Option<f64>, second: Option<f64>) -> Option<f64> {
    match (first, second) {
        (Some(a), Some(b)) => Some((a + b) / 2.0),
        (Some(x), None) | (None, Some(x)) => Some(x),
        (None, None) => None,
    }
}

/// The judge's probability mass on each verdict at the position where it
/// names one, normalised over the three (sums to 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VerdictProbs {
    pub a: f64,
    pub b: f64,
    pub tie: f64,
}

/// Read [`VerdictProbs`] from per-token log-probabilities of a judge's
/// answer: at the first generated token that starts the verdict (the text
/// before it ends with `Preferred:`), sum the probabilities of the
/// alternatives whose text, trimmed, is `A`, `B`, or a non-empty prefix of
/// `tie` (any case) — several tokens can spell the same verdict (`A`, ` A`).
/// `None` without log-probabilities, without a verdict position, or with no
/// mass on any verdict among the alternatives returned.
pub fn verdict_probs(logprobs: &[backforth_inference::TokenLogprobs]) -> Option<VerdictProbs> {
    let mut before = String::new();
    for t in logprobs {
        let starts_verdict =
            before.trim_end().ends_with("Preferred:") && !t.token.trim().is_empty();
        if starts_verdict {
            let (mut a, mut b, mut tie) = (0.0f64, 0.0f64, 0.0f64);
            let mut seen = std::collections::HashSet::new();
            // the chosen token is among the alternatives unless the grammar forced an unlikely one
            for (text, lp) in t
                .top
                .iter()
                .chain(std::iter::once(&(t.token.clone(), t.logprob)))
            {
                if !seen.insert(text.as_str()) {
                    continue;
                }
                let p = (*lp as f64).exp();
                let w = text.trim();
                match w {
                    "A" => a += p,
                    "B" => b += p,
                    _ if !w.is_empty() && "tie".starts_with(&w.to_ascii_lowercase()) => tie += p,
                    _ => {}
                }
            }
            let s = a + b + tie;
            return (s > 0.0 && s.is_finite()).then(|| VerdictProbs {
                a: a / s,
                b: b / s,
                tie: tie / s,
            });
        }
        before.push_str(&t.token);
    }
    None
}

/// The model's preference (0–1) in one order from the verdict
/// probabilities: `P(model) + ½·P(tie)`, the model being A when
/// `model_is_a` (AlpacaEval's weighted judges use the A/B token
/// probabilities the same way).
pub fn weighted_preference(p: VerdictProbs, model_is_a: bool) -> f64 {
    (if model_is_a { p.a } else { p.b }) + 0.5 * p.tie
}

/// The model's preference in one order from its discrete verdict.
pub fn verdict_preference(v: Verdict, model_is_a: bool) -> f64 {
    match (v, model_is_a) {
        (Verdict::Tie, _) => 0.5,
        (Verdict::A, true) | (Verdict::B, false) => 1.0,
        _ => 0.0,
    }
}

/// Summary of a pairwise comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinRate {
    /// Instructions with a preference (both orders failed → excluded).
    pub n: usize,
    /// Mean preference × 100 (ties count half).
    pub win_rate: f64,
    /// Standard error of `win_rate` (sample standard deviation / √n, × 100).
    pub standard_error: f64,
    /// Instructions with preference exactly 0.5.
    pub ties: usize,
    /// Length-controlled win rate × 100 (see the module docs); `None` with fewer than 2 items.
    pub lc_win_rate: Option<f64>,
    /// Fitted (β₀, β₁) of the length model.
    pub lc_coefficients: Option<(f64, f64)>,
}

/// Win rate, standard error, ties and length-controlled win rate from
/// per-instruction preferences (0–1) and length differences (model −
/// baseline, any unit, e.g. characters). Panics never; `prefs` and
/// `len_diff` must have the same length (extra items of the longer are ignored).
pub fn win_rate(prefs: &[f64], len_diff: &[f64]) -> WinRate {
    let n = prefs.len().min(len_diff.len());
    let prefs = &prefs[..n];
    let mean = if n > 0 {
        prefs.iter().sum::<f64>() / n as f64
    } else {
        0.0
    };
    let se = if n > 1 {
        let var = prefs.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (var / n as f64).sqrt()
    } else {
        0.0
    };
    let lc = (n >= 2).then(|| length_controlled(prefs, &len_diff[..n]));
    WinRate {
        n,
        win_rate: 100.0 * mean,
        standard_error: 100.0 * se,
        ties: prefs.iter().filter(|p| (**p - 0.5).abs() < 1e-12).count(),
        lc_win_rate: lc.map(|(b0, _)| 100.0 * sigmoid(b0)),
        lc_coefficients: lc,
    }
}

/// Whether a judge's verdicts carry information, from the verdicts of both orders.
///
/// A judge that names the same *position* whatever it is shown (always `A`)
/// gives every pair a preference of 0.5: its "win rate of 50" is no result.
/// Position consistency is the share of pairs, among those with both orders
/// parsed, whose two verdicts name the same *output* (A then B, B then A, or
/// tie twice); below 0.5 most pairs flip with the order and the judge is
/// reported as uninformative (Zheng et al. 2023, "Judging LLM-as-a-Judge",
/// arXiv:2306.05685, §3.3 measure position bias the same way).
///
/// With verdict probabilities (a weighted judge), the same question is asked
/// of the probabilities once the judge's average pull towards the first
/// position is taken out: a judge that always says `A` with 0.99 can still
/// say it with 0.97 when the baseline is shown first and 0.995 when the
/// model is, and that difference is information. A pair is consistent when
/// both orders lean the same way by more than [`WEIGHTED_MARGIN`] after that
/// correction; when at least half the weighted pairs are consistent the
/// judge is informative. A judge whose probabilities ignore the content
/// scores 0 here (nothing leans) or about 0.5 by chance (noise), so read it
/// with the few-pairs warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Reliability {
    /// Pairs with both orders parsed.
    pub pairs_both_orders: usize,
    /// Share of those whose two verdicts agree on the output; `None` without any.
    pub position_consistency: Option<f64>,
    /// Share of parsed non-tie verdicts that chose the output shown first
    /// (0.5 = no position bias); `None` without any.
    pub first_position_rate: Option<f64>,
    /// Pairs with verdict probabilities in both orders.
    #[serde(default)]
    pub weighted_pairs: usize,
    /// Share of those whose probabilities lean to the same output in both
    /// orders after the position correction; `None` without any.
    #[serde(default)]
    pub weighted_consistency: Option<f64>,
    /// Mean probability the judge put on the output shown first (0.5 = no
    /// position bias); `None` without probabilities.
    #[serde(default)]
    pub first_position_probability: Option<f64>,
    /// `weighted` when at least half the pairs judged in both orders have
    /// probabilities (the win rate is then the probability-weighted one),
    /// else `verdicts`.
    #[serde(default)]
    pub basis: String,
    /// False when the consistency of the basis is below 0.5: no win rate should be read from this judge.
    pub informative: bool,
    /// Plain-language warnings (uninformative judge, few pairs).
    pub warnings: Vec<String>,
}

/// Pairs below which a win rate carries a small-sample warning.
pub const MIN_PAIRS: usize = 30;

/// Least lean (in preference, 0–1) that counts as a direction in the
/// weighted consistency: one percentage point.
pub const WEIGHTED_MARGIN: f64 = 0.01;

/// [`Reliability`] from per-pair verdicts `(model first, model second)` and
/// per-pair probability-weighted preferences for the model in the same two
/// orders (`None` where the order has no probabilities; pass `&[]` for a
/// judge without any).
pub fn reliability(
    verdicts: &[(Option<Verdict>, Option<Verdict>)],
    weighted: &[(Option<f64>, Option<f64>)],
) -> Reliability {
    let mut r = Reliability::default();
    let (mut consistent, mut first, mut decided) = (0usize, 0usize, 0usize);
    for (vf, vs) in verdicts {
        // `A` is always the output shown first, whichever it is
        for v in [vf, vs] {
            match v {
                Some(Verdict::A) => {
                    first += 1;
                    decided += 1
                }
                Some(Verdict::B) => decided += 1,
                _ => {}
            }
        }
        if let (Some(a), Some(b)) = (vf, vs) {
            r.pairs_both_orders += 1;
            // model first: A = model; model second: B = model
            if matches!(
                (a, b),
                (Verdict::A, Verdict::B) | (Verdict::B, Verdict::A) | (Verdict::Tie, Verdict::Tie)
            ) {
                consistent += 1;
            }
        }
    }
    r.position_consistency =
        (r.pairs_both_orders > 0).then(|| consistent as f64 / r.pairs_both_orders as f64);
    r.first_position_rate = (decided > 0).then(|| first as f64 / decided as f64);

    // weighted: P(first position) is the model's preference when it is shown first, 1 − it when second
    let both: Vec<(f64, f64)> = weighted
        .iter()
        .filter_map(|(f, s)| Some(((*f)?, (*s)?)))
        .collect();
    let firsts: Vec<f64> = weighted
        .iter()
        .flat_map(|(f, s)| [*f, s.map(|x| 1.0 - x)])
        .flatten()
        .collect();
    r.weighted_pairs = both.len();
    r.first_position_probability =
        (!firsts.is_empty()).then(|| firsts.iter().sum::<f64>() / firsts.len() as f64);
    if let Some(fp) = r.first_position_probability.filter(|_| !both.is_empty()) {
        let bias = fp - 0.5;
        let agree = both
            .iter()
            .filter(|(pf, ps)| {
                let (lf, ls) = (pf - bias - 0.5, ps + bias - 0.5);
                lf.abs() > WEIGHTED_MARGIN
                    && ls.abs() > WEIGHTED_MARGIN
                    && lf.signum() == ls.signum()
            })
            .count();
        r.weighted_consistency = Some(agree as f64 / both.len() as f64);
    }
    let weighted_basis = r.weighted_pairs > 0 && 2 * r.weighted_pairs >= r.pairs_both_orders;
    r.basis = if weighted_basis {
        "weighted"
    } else {
        "verdicts"
    }
    .into();
    let (consistency, n, what) = if weighted_basis {
        (
            r.weighted_consistency,
            r.weighted_pairs,
            "lean to the same output in both orders once the position pull is taken out",
        )
    } else {
        (
            r.position_consistency,
            r.pairs_both_orders,
            "keep their verdict when the order is swapped",
        )
    };
    r.informative = consistency.is_some_and(|c| c >= 0.5);
    match consistency {
        None => r
            .warnings
            .push("judge uninformative: no pair has both orders judged".into()),
        Some(c) if c < 0.5 => {
            let first = if weighted_basis {
                r.first_position_probability
            } else {
                r.first_position_rate
            };
            r.warnings.push(format!(
                "judge uninformative: {:.0}% of {n} pairs {what}; it favours the first position {:.0}% of the time. No win rate is reported.",
                100.0 * c,
                100.0 * first.unwrap_or(0.5)
            ))
        }
        _ => {}
    }
    if r.pairs_both_orders < MIN_PAIRS {
        r.warnings.push(format!("only {} pairs judged in both orders (< {MIN_PAIRS}): the win rate's interval is wide; read it as a hint, not a result", r.pairs_both_orders));
    }
    r
}

/// Percentile bootstrap 95% interval of the mean preference × 100:
/// `resamples` resamples with replacement from a ChaCha8 RNG seeded by
/// `seed` (deterministic). `None` with fewer than 2 preferences.
pub fn bootstrap_ci(prefs: &[f64], resamples: usize, seed: u64) -> Option<(f64, f64)> {
    use rand::{Rng, SeedableRng};
    let n = prefs.len();
    if n < 2 || resamples == 0 {
        return None;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| prefs[rng.gen_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| means[((p * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    Some((100.0 * q(0.025), 100.0 * q(0.975)))
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Fit `σ(β₀ + β₁·tanh(Δ/sd(Δ)))` to fractional targets by Newton's method;
/// returns (β₀, β₁). A zero spread of Δ leaves β₁ at 0.
pub fn length_controlled(prefs: &[f64], len_diff: &[f64]) -> (f64, f64) {
    const RIDGE: f64 = 1e-4;
    let n = prefs.len() as f64;
    let m = len_diff.iter().sum::<f64>() / n;
    let sd = (len_diff.iter().map(|d| (d - m).powi(2)).sum::<f64>() / n).sqrt();
    let x: Vec<f64> = len_diff
        .iter()
        .map(|d| if sd > 0.0 { (d / sd).tanh() } else { 0.0 })
        .collect();
    let (mut b0, mut b1) = (0.0f64, 0.0f64);
    for _ in 0..100 {
        // gradient and Hessian of the penalised log-likelihood
        let (mut g0, mut g1, mut h00, mut h01, mut h11) = (0.0, -RIDGE * b1, 0.0, 0.0, RIDGE);
        for (y, xi) in prefs.iter().zip(&x) {
            let p = sigmoid(b0 + b1 * xi);
            let w = p * (1.0 - p);
            g0 += y - p;
            g1 += (y - p) * xi;
            h00 += w;
            h01 += w * xi;
            h11 += w * xi * xi;
        }
        h00 += 1e-12;
        let det = h00 * h11 - h01 * h01;
        if det.abs() < 1e-300 {
            break;
        }
        let d0 = (h11 * g0 - h01 * g1) / det;
        let d1 = (h00 * g1 - h01 * g0) / det;
        // damp huge steps (nearly separable data)
        let scale = 1.0f64.min(5.0 / d0.abs().max(d1.abs()).max(1e-300));
        b0 += scale * d0;
        b1 += scale * d1;
        if d0.abs().max(d1.abs()) < 1e-10 {
            break;
        }
    }
    (b0, b1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_strictly() {
        assert_eq!(
            parse_verdict("Output A follows the instruction.\nPreferred: A"),
            Ok(Verdict::A)
        );
        assert_eq!(parse_verdict("Preferred: B\n\n"), Ok(Verdict::B));
        assert_eq!(parse_verdict("both fine\nPreferred: Tie"), Ok(Verdict::Tie));
        assert!(parse_verdict("Preferred: A\nbut actually B").is_err());
        assert!(parse_verdict("Preferred: C").is_err());
        assert!(parse_verdict("").is_err());
    }

    #[test]
    fn both_orders_cancel_position_bias() {
        use Verdict::*;
        // a judge that always prefers the first position gives a tie overall
        assert_eq!(pair_preference(Some(A), Some(A)), Some(0.5));
        assert_eq!(pair_preference(Some(A), Some(B)), Some(1.0));
        assert_eq!(pair_preference(Some(B), Some(A)), Some(0.0));
        assert_eq!(pair_preference(Some(Tie), Some(B)), Some(0.75));
        assert_eq!(pair_preference(None, Some(B)), Some(1.0));
        assert_eq!(pair_preference(None, None), None);
        let p = VerdictProbs {
            a: 0.6,
            b: 0.2,
            tie: 0.2,
        };
        assert!((weighted_preference(p, true) - 0.7).abs() < 1e-12);
        assert!((weighted_preference(p, false) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn an_always_a_judge_is_uninformative() {
        use Verdict::*;
        let always_a = vec![(Some(A), Some(A)); 10];
        let r = reliability(&always_a, &[]);
        assert_eq!(r.position_consistency, Some(0.0));
        assert_eq!(r.first_position_rate, Some(1.0));
        assert!(!r.informative);
        assert!(
            r.warnings[0].starts_with("judge uninformative"),
            "{:?}",
            r.warnings
        );
        let good: Vec<_> = (0..40)
            .map(|i| {
                if i % 4 == 0 {
                    (Some(B), Some(A))
                } else {
                    (Some(A), Some(B))
                }
            })
            .collect();
        let r = reliability(&good, &[]);
        assert_eq!(r.position_consistency, Some(1.0));
        assert_eq!(r.first_position_rate, Some(0.5));
        assert!(r.informative && r.warnings.is_empty(), "{r:?}");
        // few pairs: informative, but said aloud
        assert!(reliability(&good[..5], &[]).warnings[0].contains("only 5 pairs"));
    }

    #[test]
    fn weights_separate_a_content_blind_judge_from_a_biased_one() {
        use Verdict::*;
        let always_a = vec![(Some(A), Some(A)); 40];
        // content-blind: P(A) = 0.99 whatever is shown → nothing leans once the pull is out
        let blind = vec![(Some(0.99), Some(0.01)); 40];
        let r = reliability(&always_a, &blind);
        assert_eq!(
            (r.basis.as_str(), r.weighted_pairs, r.weighted_consistency),
            ("weighted", 40, Some(0.0))
        );
        assert!((r.first_position_probability.unwrap() - 0.99).abs() < 1e-9);
        assert!(
            !r.informative && r.warnings[0].starts_with("judge uninformative"),
            "{r:?}"
        );
        // biased but reading: always says A, yet puts more on A when A is the better output
        // (the model is better on 30 pairs, the baseline on 10)
        let reading: Vec<_> = (0..40)
            .map(|i| {
                if i % 4 == 0 {
                    (Some(0.93), Some(0.03))
                } else {
                    (Some(0.99), Some(0.09))
                }
            })
            .collect();
        let r = reliability(&always_a, &reading);
        assert_eq!(r.weighted_consistency, Some(1.0));
        assert!(r.informative && r.warnings.is_empty(), "{r:?}");
        // probabilities for too few pairs: the verdicts decide
        let r = reliability(&always_a, &[(Some(0.9), Some(0.9))]);
        assert_eq!(r.basis, "verdicts");
        assert!(!r.informative);
    }

    #[test]
    fn verdict_probabilities_from_token_logprobs() {
        use backforth_inference::TokenLogprobs;
        let t = |tok: &str, lp: f32, top: &[(&str, f32)]| TokenLogprobs {
            token: tok.into(),
            logprob: lp,
            top: top.iter().map(|(a, b)| (a.to_string(), *b)).collect(),
        };
        // "Preferred" ":" " A" with both spellings of A among the alternatives
        let lps = vec![
            t("Preferred", 0.0, &[("Preferred", 0.0)]),
            t(":", 0.0, &[(":", 0.0)]),
            t(
                " A",
                (0.5f32).ln(),
                &[
                    (" A", (0.5f32).ln()),
                    (" B", (0.2f32).ln()),
                    ("A", (0.1f32).ln()),
                    (" t", (0.1f32).ln()),
                    (" The", (0.1f32).ln()),
                ],
            ),
        ];
        let p = verdict_probs(&lps).unwrap();
        assert!(
            (p.a - 0.6 / 0.9).abs() < 1e-6
                && (p.b - 0.2 / 0.9).abs() < 1e-6
                && (p.tie - 0.1 / 0.9).abs() < 1e-6,
            "{p:?}"
        );
        // the space as its own token: the verdict starts at the next one
        let lps = vec![
            t("Preferred:", 0.0, &[]),
            t(" ", 0.0, &[]),
            t("B", -0.1, &[("B", -0.1), ("A", -2.5)]),
        ];
        assert!(verdict_probs(&lps).unwrap().b > 0.9);
        // chosen token outside the alternatives (grammar forced it) still counts
        let lps = vec![
            t("Preferred: ", 0.0, &[]),
            t("tie", -3.0, &[("Sure", -0.1)]),
        ];
        assert_eq!(verdict_probs(&lps).unwrap().tie, 1.0);
        assert_eq!(verdict_probs(&[]), None);
        assert_eq!(
            verdict_probs(&[
                t("Preferred: ", 0.0, &[]),
                t("Sure", -0.1, &[("Sure", -0.1)])
            ]),
            None
        );
    }

    #[test]
    fn bootstrap_interval_covers_the_mean_and_is_deterministic() {
        let p: Vec<f64> = (0..50).map(|i| if i % 5 < 3 { 1.0 } else { 0.0 }).collect();
        let (lo, hi) = bootstrap_ci(&p, 2000, 7).unwrap();
        assert!(
            lo < 60.0 && hi > 60.0 && lo > 40.0 && hi < 80.0,
            "{lo} {hi}"
        );
        assert_eq!(bootstrap_ci(&p, 2000, 7), Some((lo, hi)));
        assert_eq!(bootstrap_ci(&[1.0], 2000, 7), None);
        // no spread, no interval width
        assert_eq!(bootstrap_ci(&[0.5; 10], 500, 1), Some((50.0, 50.0)));
    }

    #[test]
    fn win_rate_and_standard_error_by_hand() {
        // prefs 1, 0, .5, 1: mean .625; sample var = (.140625+.390625+.015625+.140625)/3 = .229167; se = sqrt(.229167/4)
        let w = win_rate(&[1.0, 0.0, 0.5, 1.0], &[0.0; 4]);
        assert_eq!(w.n, 4);
        assert!((w.win_rate - 62.5).abs() < 1e-9);
        assert!(
            (w.standard_error - 23.935677693908453).abs() < 1e-9,
            "{}",
            w.standard_error
        );
        assert_eq!(w.ties, 1);
        // no length spread: the length term is inert, LC = raw win rate
        assert!(
            (w.lc_win_rate.unwrap() - 62.5).abs() < 1e-6,
            "{:?}",
            w.lc_win_rate
        );
    }

    #[test]
    fn length_control_removes_a_pure_length_effect() {
        // the longer output always wins, and the model is longer half the time: LC ≈ 50
        let d: Vec<f64> = (0..40)
            .map(|i| {
                if i % 2 == 0 {
                    100.0 + i as f64
                } else {
                    -100.0 - i as f64
                }
            })
            .collect();
        let p: Vec<f64> = d.iter().map(|x| if *x > 0.0 { 1.0 } else { 0.0 }).collect();
        let w = win_rate(&p, &d);
        assert!((w.win_rate - 50.0).abs() < 1e-9);
        assert!((w.lc_win_rate.unwrap() - 50.0).abs() < 1.0, "{:?}", w);
        // a model that is always longer and wins 80%: raw 80, LC well below
        let d2: Vec<f64> = (0..50).map(|i| 50.0 + (i % 10) as f64 * 30.0).collect();
        let p2: Vec<f64> = (0..50)
            .map(|i| if i % 10 >= 2 { 1.0 } else { 0.0 })
            .collect();
        let w2 = win_rate(&p2, &d2);
        assert!((w2.win_rate - 80.0).abs() < 1e-9);
        assert!(w2.lc_win_rate.unwrap() < 80.0, "{:?}", w2);
    }

    #[test]
    fn fit_satisfies_the_score_equations() {
        // at the (unpenalised) optimum: sum(y - p) = 0 and sum((y - p) x) ≈ ridge·β₁
        let d: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64 - 50.0).collect();
        let y: Vec<f64> = (0..200)
            .map(|i| [0.0, 0.5, 1.0, 1.0, 0.5][(i * 7) % 5] * if d[i] > 20.0 { 1.0 } else { 0.8 })
            .collect();
        let (b0, b1) = length_controlled(&y, &d);
        let m = d.iter().sum::<f64>() / 200.0;
        let sd = (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 200.0).sqrt();
        let (mut g0, mut g1) = (0.0, 0.0);
        for (yi, di) in y.iter().zip(&d) {
            let x = (di / sd).tanh();
            let p = sigmoid(b0 + b1 * x);
            g0 += yi - p;
            g1 += (yi - p) * x;
        }
        assert!(g0.abs() < 1e-8, "{g0}");
        assert!((g1 - 1e-4 * b1).abs() < 1e-8, "{g1} {b1}");
        assert!(b1 > 0.0, "longer outputs win more here");
    }
}
