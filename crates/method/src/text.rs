//! Text helpers shared by the lexical checks ([`crate::checks`]), the
//! learned grounding checker ([`crate::grounding`]), the labelled sets and
//! seed selection: words, a crude stem, numbers, sentences, names, and the
//! document windows of the semantic relevance check. Written here because
//! they define what the checks compare (and must agree between them); no
//! crate splits text the same way.

use std::collections::HashSet;

// Function words and generic task words: neither says what an instruction is about.
pub const STOPWORDS: &str = "a about above after again against all also am an and any are as at be because been before being below between both but by can could did do does doing down during each few for from further had has have having he her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other our ours out over own same she should so some such than that the their theirs them then there these they this those through to too under until up very was we were what when where which while who whom why will with would you your yours yourself also may might must shall us one two many much well like get got make made use used using way ways thing things something anything let lets new said says say according per via yet still however although though since within without upon among every either neither whether etc including";
pub const TASK_WORDS: &str = "write explain describe summarize summarise summary discuss give provide list tell show outline detail details detailed information info article text story stories news report reported passage document paragraph post blog piece content key main point points brief briefly short overview analysis analyze analyse compare explainer help please question answer find learn know happen happened happening event events happens important significance significant role impact effect effects include includes regarding concerning related relate topic topics aspects aspect mention mentioned recent latest situation happenings recently reason reasons involving involve involves involved mentioning mention mentions concerning focusing focus";
pub const NUMBER_WORDS: [&str; 13] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
];

/// The word lists as sets, built once per process (the checks run per pair).
pub static STOP: std::sync::LazyLock<HashSet<&'static str>> =
    std::sync::LazyLock::new(|| STOPWORDS.split_whitespace().collect());
pub static TASK: std::sync::LazyLock<HashSet<&'static str>> =
    std::sync::LazyLock::new(|| TASK_WORDS.split_whitespace().collect());

/// Lower-case alphanumeric words (apostrophes inside words kept, then dropped with what follows: "Jackson's" → "jackson").
pub fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in s.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’')) {
        let w = w.split(['\'', '’']).next().unwrap_or("");
        if !w.is_empty() {
            out.push(w.to_lowercase());
        }
    }
    out
}

/// The crude stem used for matching (see the module docs).
pub fn stem(w: &str) -> String {
    let mut w: String = w.to_lowercase();
    if w.chars().count() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w.pop();
    }
    w.chars().take(6).collect()
}

/// Numbers in a text, normalised (thousands separators dropped, "seven" → "7").
pub fn numbers(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let inside = !cur.is_empty()
            && (c == ',' || c == '.')
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if c.is_ascii_digit() || inside {
            if c != ',' {
                cur.push(c);
            }
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

pub fn number_set(s: &str) -> HashSet<String> {
    let mut n: HashSet<String> = numbers(s).into_iter().collect();
    for w in words(s) {
        if let Some(i) = NUMBER_WORDS.iter().position(|x| *x == w) {
            n.insert(i.to_string());
        }
    }
    n
}

/// Sentences: split after `.`, `!`, `?` followed by white space, and at line breaks.
pub fn sentences(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in s.lines() {
        let mut start = 0;
        let b = line.as_bytes();
        for i in 0..b.len() {
            if matches!(b[i], b'.' | b'!' | b'?')
                && b.get(i + 1).is_some_and(|c| c.is_ascii_whitespace())
            {
                out.push(line[start..=i].trim());
                start = i + 1;
            }
        }
        out.push(line[start..].trim());
    }
    out.into_iter().filter(|x| !x.is_empty()).collect()
}

/// A text's content words, lower case, in order: ≥ 3 characters, not in
/// `stop`, not bare numbers.
pub fn content_words(s: &str, stop: &HashSet<&str>) -> Vec<String> {
    words(s)
        .into_iter()
        .filter(|w| {
            w.chars().count() >= 3
                && !stop.contains(w.as_str())
                && !w.chars().all(|c| c.is_ascii_digit())
        })
        .collect()
}

/// An instruction's topic words: content words that are not generic task
/// words ("explain", "article") either.
pub fn topic_words(s: &str) -> Vec<String> {
    content_words(s, &STOP)
        .into_iter()
        .filter(|w| !TASK.contains(w.as_str()))
        .collect()
}

/// Stems of a text's content words (no stopwords, no pure numbers, ≥ 3 chars).
pub fn content_stems(s: &str, stop: &HashSet<&str>) -> Vec<String> {
    content_words(s, stop).iter().map(|w| stem(w)).collect()
}

/// Capitalised words that are not sentence-initial, not function words:
/// a cheap stand-in for names of people, places and organisations.
pub fn names(s: &str, stop: &HashSet<&str>, task: &HashSet<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for sent in sentences(s) {
        let toks: Vec<&str> = sent.split_whitespace().collect();
        for (i, t) in toks.iter().enumerate() {
            if i == 0 {
                continue;
            }
            let t = t
                .trim_matches(|c: char| !c.is_alphanumeric())
                .split(['\'', '’'])
                .next()
                .unwrap_or("");
            // "Saudi-born": each hyphen part is a word of its own
            for w in t.split('-') {
                let w = w.to_string();
                let lw = w.to_lowercase();
                if w.chars().count() >= 2
                    && w.chars().next().is_some_and(|c| c.is_uppercase())
                    && !stop.contains(lw.as_str())
                    && !task.contains(lw.as_str())
                    && !NUMBER_WORDS.contains(&lw.as_str())
                {
                    out.push(w);
                }
            }
        }
    }
    out
}


/// Words per document window for the semantic relevance check: about 130
/// word-piece tokens of English, inside the 256-token context of MiniLM
/// models (which were trained on 128-token inputs).
pub const WINDOW_WORDS: usize = 96;
/// Words by which consecutive windows advance (a third overlaps).
pub const WINDOW_STRIDE: usize = 64;
/// Texts per embedding call.
pub const EMBED_BATCH: usize = 32;

/// A document's windows for the semantic relevance check: runs of
/// [`WINDOW_WORDS`] white-space-separated words every [`WINDOW_STRIDE`]
/// words (the last window ends at the document's end); one window for a
/// short document, none for an empty one.
pub fn windows(text: &str) -> Vec<String> {
    let w: Vec<&str> = text.split_whitespace().collect();
    if w.len() <= WINDOW_WORDS {
        return if w.is_empty() {
            vec![]
        } else {
            vec![w.join(" ")]
        };
    }
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + WINDOW_WORDS).min(w.len());
        out.push(w[start..end].join(" "));
        if end == w.len() {
            break;
        }
        start = (start + WINDOW_STRIDE).min(w.len() - WINDOW_WORDS);
    }
    out
}

