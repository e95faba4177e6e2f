//! `backforth prepare` end to end on documents written by the test: heading
//! segments, filters, dedup, the Parquet copy, and `run.prepare = true`.

use backforth::config::Config;
use backforth::prepare::{candidates_path, prepare};
use backforth::record::Record;

#[test]
fn headings_mode_filters_and_dedups() {
    let dir = tempfile::tempdir().unwrap();
    let para = |topic: &str| {
        format!(
            "Growing {topic} at home takes patience and a sunny spot. Water the plants in the morning so the leaves dry before night, \
             feed them every second week with a mild fertiliser, and pick off damaged leaves early. When the weather turns cold, \
             move the pots indoors or cover the beds with straw. Most gardeners find that {topic} grown this way give a steady harvest \
             through the season, and the plants stay healthy for several years if the soil is refreshed each spring with compost."
        )
    };
    let doc1 = format!(
        "# Growing tomatoes\n\n{}\n\n# Quick Links\n\n{}\n\n# SALE NOW ON\n\n{}\n",
        para("tomatoes"),
        para("links"),
        para("sale")
    );
    let doc2 = format!(
        "# Growing tomatoes again\n\n{}\n\n# Peppers\n\n{}\n",
        para("tomatoes"),
        para("peppers")
    );
    let p = dir.path().join("docs.jsonl");
    std::fs::write(
        &p,
        format!(
            "{}\n{}\n{}\n",
            serde_json::json!({"id": "d1", "text": doc1}),
            serde_json::json!({"id": "d2", "text": doc2}),
            serde_json::json!({"id": "d3", "text": "no headings at all"})
        ),
    )
    .unwrap();
    let cfg = Config::load(
        None,
        &[
            format!("input.paths=[\"{}\"]", p.display()),
            format!("output.dir=\"{}\"", dir.path().join("out").display()),
            "segment.mode=\"headings\"".into(),
            "filter.min_chars=300".into(),
        ],
    )
    .unwrap();
    let st = prepare(&cfg, None).unwrap();
    assert_eq!(st.dropped.get("navigation_heading"), Some(&1));
    assert_eq!(st.dropped.get("all_caps_heading"), Some(&1));
    assert_eq!(
        st.dropped
            .get("exact_duplicate")
            .or(st.dropped.get("near_duplicate")),
        Some(&1),
        "{:?}",
        st.dropped
    );
    assert_eq!(st.dropped.get("no_headings"), Some(&1));
    assert_eq!(st.kept, 2);
    let recs: Vec<Record> = std::fs::read_to_string(candidates_path(&dir.path().join("out")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<_> = recs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["d1#s0", "d2#s1"]);
    assert_eq!(recs[1].metadata["heading"], "Peppers");
    assert!(recs[0].text.starts_with("Growing tomatoes\n\n"));

    // Parquet copy of the candidates, read back by our own Parquet reader
    #[cfg(feature = "parquet")]
    {
        let mut c2 = cfg.clone();
        c2.output.candidates_parquet = true;
        prepare(&c2, None).unwrap();
        let pq = dir.path().join("out/candidates.parquet");
        let docs: Vec<_> =
            backforth_corpus::readers::DocumentStream::new(vec![pq], Default::default()).collect();
        assert_eq!(
            docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["d1#s0", "d2#s1"]
        );
        assert_eq!(docs[1].text, recs[1].text);
    }

    // `run` with run.prepare = true: the same candidates become the run's documents,
    // and a changed filter setting invalidates them (new key)
    let mut cfg = cfg;
    cfg.run.prepare = true;
    let run = backforth::store::RunDir(dir.path().join("run"));
    std::fs::create_dir_all(&run.0).unwrap();
    let (k1, _) = backforth::pipeline::prepare_documents(&cfg, &run, None).unwrap();
    let docs: Vec<Record> = std::fs::read_to_string(run.documents())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        docs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["d1#s0", "d2#s1"]
    );
    assert!(run.0.join("prepare_stats.json").exists());
    cfg.filter.min_chars = 100_000;
    let (k2, _) = backforth::pipeline::prepare_documents(&cfg, &run, None).unwrap();
    assert_ne!(k1, k2);
    assert_eq!(std::fs::read_to_string(run.documents()).unwrap(), "");
}
