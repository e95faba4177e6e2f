//! Choosing the next token of a slot (grammar checked on the proposal first, greedy argmax without a candidate array), token pieces and top log-probabilities.

use crate::*;
use backforth_inference::backend::TokenLogprobs;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

/// Sample the next token of a slot: propose without the grammar, keep the
/// proposal if the grammar accepts it, else sample again from the
/// grammar-constrained distribution.
pub(crate) fn pick(s: &mut Slot, ctx: &LlamaContext<'_>, ib: i32) -> LlamaToken {
    let proposal = match s.sampler.as_mut() {
        Some(sm) => sm.sample(ctx, ib),
        None => argmax(ctx.get_logits_ith(ib)),
    };
    let Some(g) = s.grammar.as_mut() else {
        return proposal;
    };
    let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(proposal, 1.0, 0.0)], false);
    one.apply_sampler(g);
    let tok = if one.data[0].logit().is_finite() {
        proposal
    } else {
        let mut all = ctx.token_data_array_ith(ib);
        all.apply_sampler(g);
        match s.sampler.as_mut() {
            Some(sm) => {
                all.apply_sampler(sm);
                all.selected_token()
                    .unwrap_or_else(|| all.sample_token_greedy())
            }
            None => all.sample_token_greedy(),
        }
    };
    g.accept(tok);
    tok
}

/// The text of one token (lossy: a piece may be part of a UTF-8 character).
pub(crate) fn piece(vocab: &llama_cpp_2::vocab::LlamaVocab<'_>, t: LlamaToken) -> String {
    String::from_utf8_lossy(&vocab.token_to_piece(t, false, None)).into_owned()
}

/// Log-softmax of raw `logits` (the model's distribution before grammar and
/// sampling) at the chosen token `tok` and the `k` most likely tokens.
/// One pass for the maximum, one for the normaliser, a partial sort for the
/// top k: O(vocabulary) per generated token, paid only when asked for.
pub(crate) fn top_logprobs(
    logits: &[f32],
    tok: LlamaToken,
    k: usize,
    text: impl Fn(LlamaToken) -> String,
) -> TokenLogprobs {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_z = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    let k = k.min(idx.len());
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
    }
    idx.truncate(k);
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let lp = |i: usize| logits.get(i).map_or(f32::NEG_INFINITY, |l| l - log_z);
    TokenLogprobs {
        token: text(tok),
        logprob: lp(tok.0 as usize),
        top: idx
            .into_iter()
            .map(|i| (text(LlamaToken(i as i32)), lp(i)))
            .collect(),
    }
}

/// Index of the largest logit (ties: the lowest index, as llama.cpp's greedy sampler).
pub(crate) fn argmax(logits: &[f32]) -> LlamaToken {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    LlamaToken(best as i32)
}
