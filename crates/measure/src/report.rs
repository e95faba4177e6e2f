//! `backforth report`: one self-contained HTML file for a run and/or a set of
//! pairwise comparisons. Plots are SVG drawn by `plotters` and inlined; the
//! example table filters with a few lines of inline script; nothing is loaded
//! from the network when the page is viewed.
//!
//! Inputs: [`Analysis`] (written by `backforth analyze` as `analysis.json`),
//! the run's examples ([`crate::analyze::read_run`]) and any number of eval
//! folders ([`crate::eval::EvalSummary`] + per-instruction results).

use crate::analyze::{Example, RunStats, TextStats};
use crate::eval::{EvalSummary, PairResult};
use crate::mauve::MauveResult;
use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// MAUVE between two named sets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MauvePair {
    pub p: String,
    pub q: String,
    pub result: MauveResult,
}

/// One embedded text projected on the first two principal components.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MapPoint {
    pub set: String,
    pub x: f32,
    pub y: f32,
}

/// What `backforth analyze` writes (`analysis.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Analysis {
    /// Run folder analysed, if any.
    pub run_dir: Option<String>,
    /// Embedding model id, if embeddings were computed.
    pub embedder: Option<String>,
    pub sets: Vec<TextStats>,
    pub mauve: Vec<MauvePair>,
    /// 2-D PCA map of the embeddings (at most `analyze.map_points` per set).
    pub map: Vec<MapPoint>,
    pub run: Option<RunStats>,
    /// Seconds spent embedding and on MAUVE.
    pub embed_s: f64,
    pub mauve_s: f64,
}

/// One evaluation to show.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalView {
    pub name: String,
    pub summary: EvalSummary,
    pub results: Vec<PairResult>,
}

/// One training run's losses, from the `progress.jsonl` that `backforth
/// train` writes: training loss per update and held-out loss where measured
/// (nats per completion token), by update step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainCurve {
    pub name: String,
    pub loss: Vec<(u64, f64)>,
    pub eval_loss: Vec<(u64, f64)>,
}

impl TrainCurve {
    /// Parse a `progress.jsonl` (lines with `step` and `loss` or
    /// `eval_loss`). Lines that are not such JSON objects are skipped and
    /// counted in the second value.
    pub fn from_progress(name: &str, text: &str) -> (Self, usize) {
        let mut c = TrainCurve {
            name: name.to_string(),
            ..Default::default()
        };
        let mut bad = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                bad += 1;
                continue;
            };
            let Some(step) = v.get("step").and_then(|x| x.as_u64()) else {
                bad += 1;
                continue;
            };
            if let Some(l) = v.get("loss").and_then(|x| x.as_f64()) {
                c.loss.push((step, l));
            } else if let Some(l) = v.get("eval_loss").and_then(|x| x.as_f64()) {
                c.eval_loss.push((step, l));
            } else {
                bad += 1;
            }
        }
        (c, bad)
    }
}

/// Everything on one page.
pub struct ReportInput<'a> {
    pub title: String,
    pub run_summary: Option<&'a serde_json::Value>,
    pub analysis: Option<&'a Analysis>,
    pub examples: &'a [Example],
    /// Examples shown at most (the table stays usable in a browser).
    pub max_examples: usize,
    pub evals: &'a [EvalView],
    /// Training runs whose loss curves to draw.
    pub train: &'a [TrainCurve],
}

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plot: {e:?}")
}

/// Bar chart of curation scores (0 = no score).
pub fn score_histogram_svg(h: &[usize; 6], keep: u8) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (560, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let max = (*h.iter().max().unwrap_or(&1)).max(1) as u32;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Curation scores (kept: score ≥ {keep})"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d((0u32..6u32).into_segmented(), 0u32..(max + max / 10 + 1))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("score (0 = unparsed)")
            .y_desc("pairs")
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(x) => x.to_string(),
                _ => String::new(),
            })
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(h.iter().enumerate().map(|(s, &c)| {
                let colour = if s as u8 >= keep {
                    COLOURS[2]
                } else {
                    COLOURS[7]
                };
                let x = s as u32;
                Rectangle::new(
                    [
                        (SegmentValue::Exact(x), 0),
                        (SegmentValue::Exact(x + 1), c as u32),
                    ],
                    colour.filled(),
                )
            }))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(buf)
}

/// Share of texts per length bin, one line per set (lengths in words, bins up
/// to the 99th percentile over all sets).
pub fn length_svg(sets: &[TextStats]) -> Result<String> {
    let mut all: Vec<f64> = sets
        .iter()
        .flat_map(|s| s.words.values.iter().copied())
        .collect();
    all.sort_by(f64::total_cmp);
    let top = all
        .get(((all.len().max(1) - 1) as f64 * 0.99) as usize)
        .copied()
        .unwrap_or(1.0)
        .max(10.0);
    const BINS: usize = 24;
    let width = top / BINS as f64;
    let mut series = Vec::new();
    let mut ymax: f64 = 0.01;
    for s in sets {
        let mut counts = vec![0f64; BINS];
        for v in &s.words.values {
            counts[((v / width) as usize).min(BINS - 1)] += 1.0;
        }
        let n = s.words.values.len().max(1) as f64;
        let pts: Vec<(f64, f64)> = counts
            .iter()
            .enumerate()
            .map(|(i, c)| ((i as f64 + 0.5) * width, c / n))
            .collect();
        ymax = ymax.max(pts.iter().map(|p| p.1).fold(0.0, f64::max));
        series.push((s.name.clone(), pts));
    }
    line_chart(
        "Length distribution (words)",
        "words (last bin: longer)",
        "share of texts",
        (top, ymax * 1.1),
        &series,
        &[],
    )
}

/// A line chart with a legend, one colour per series in order, and filled
/// circles at `marks[i]` in series i's colour. Axes start at 0 and end at
/// `max` (x, y).
fn line_chart(
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    max: (f64, f64),
    lines: &[(String, Vec<(f64, f64)>)],
    marks: &[Vec<(f64, f64)>],
) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (560, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..max.0, 0f64..max.1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(plot_err)?;
        for (i, (name, pts)) in lines.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(plot_err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            if let Some(m) = marks.get(i) {
                chart
                    .draw_series(m.iter().map(|&p| Circle::new(p, 5, c.filled())))
                    .map_err(plot_err)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(buf)
}

/// Scatter of the 2-D embedding map, coloured by set.
pub fn map_svg(points: &[MapPoint]) -> Result<String> {
    let mut names: Vec<&str> = Vec::new();
    for p in points {
        if !names.contains(&p.set.as_str()) {
            names.push(&p.set);
        }
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for p in points {
        x0 = x0.min(p.x);
        x1 = x1.max(p.x);
        y0 = y0.min(p.y);
        y1 = y1.max(p.y);
    }
    if points.is_empty() {
        (x0, x1, y0, y1) = (-1.0, 1.0, -1.0, 1.0);
    }
    let pad = |a: f32, b: f32| ((b - a) * 0.05).max(1e-3);
    let (px, py) = (pad(x0, x1), pad(y0, y1));
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (560, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Embeddings, first two principal components",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("PC1")
            .y_desc("PC2")
            .draw()
            .map_err(plot_err)?;
        for (i, name) in names.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| p.set == *name)
                        .map(|p| Circle::new((p.x, p.y), 2, c.mix(0.6).filled())),
                )
                .map_err(plot_err)?
                .label(name.to_string())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(buf)
}

/// Win rates (and length-controlled rates) with ±1 standard error bars.
pub fn win_rate_svg(evals: &[EvalView]) -> Result<String> {
    let mut buf = String::new();
    {
        let n = evals.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut buf, (560, 120 + 50 * n)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Win rate vs baseline (±1 SE); ◆ length-controlled",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(160)
            .build_cartesian_2d(0f64..100f64, (0u32..n).into_segmented())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("win rate (%)")
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => evals
                    .get(*i as usize)
                    .map(|e| e.name.chars().take(24).collect())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(plot_err)?;
        for (i, e) in evals.iter().enumerate() {
            let (w, se) = (e.summary.win.win_rate, e.summary.win.standard_error);
            let y = i as u32;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(y)),
                        (w, SegmentValue::Exact(y + 1)),
                    ],
                    COLOURS[0].mix(0.7).filled(),
                )))
                .map_err(plot_err)?;
            chart
                .draw_series(std::iter::once(ErrorBar::new_horizontal(
                    SegmentValue::CenterOf(y),
                    (w - se).max(0.0),
                    w,
                    (w + se).min(100.0),
                    BLACK.stroke_width(2),
                    10,
                )))
                .map_err(plot_err)?;
            if let Some(lc) = e.summary.win.lc_win_rate {
                chart
                    .draw_series(std::iter::once(Cross::new(
                        (lc, SegmentValue::CenterOf(y)),
                        6,
                        COLOURS[3].stroke_width(3),
                    )))
                    .map_err(plot_err)?;
            }
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![
                    (50.0, SegmentValue::Exact(0)),
                    (50.0, SegmentValue::Exact(n)),
                ],
                BLACK.mix(0.4),
            )))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(buf)
}

/// Loss curves: training loss per update (lines) and held-out loss
/// (circles), one colour per training run.
pub fn loss_curve_svg(curves: &[TrainCurve]) -> Result<String> {
    let pts = || {
        curves
            .iter()
            .flat_map(|c| c.loss.iter().chain(&c.eval_loss))
    };
    let xmax = pts().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let ymax = pts().map(|p| p.1).fold(0.1, f64::max);
    let f = |v: &[(u64, f64)]| v.iter().map(|&(s, l)| (s as f64, l)).collect::<Vec<_>>();
    let lines: Vec<(String, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|c| (c.name.clone(), f(&c.loss)))
        .collect();
    let marks: Vec<Vec<(f64, f64)>> = curves.iter().map(|c| f(&c.eval_loss)).collect();
    line_chart(
        "Training loss (lines) and held-out loss (●)",
        "update",
        "nats per completion token",
        (xmax, ymax * 1.1),
        &lines,
        &marks,
    )
}

const TEMPLATE: &str = include_str!("../templates/report.html");

/// Render the page. Errors: a plot or the template failed.
pub fn render(input: &ReportInput<'_>) -> Result<String> {
    let mut plots: Vec<(String, String)> = Vec::new();
    if let Some(a) = input.analysis {
        if let Some(r) = &a.run {
            plots.push((
                "Curation scores".into(),
                score_histogram_svg(&r.score_histogram, r.keep_min_score)?,
            ));
        }
        if !a.sets.is_empty() {
            plots.push(("Lengths".into(), length_svg(&a.sets)?));
        }
        if !a.map.is_empty() {
            plots.push(("Embedding map".into(), map_svg(&a.map)?));
        }
    }
    if !input.evals.is_empty() {
        plots.push(("Win rates".into(), win_rate_svg(input.evals)?));
    }
    if !input.train.is_empty() {
        plots.push(("Training".into(), loss_curve_svg(input.train)?));
    }
    let shown: Vec<&Example> = input.examples.iter().take(input.max_examples).collect();
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("report.html", TEMPLATE)
        .context("report template")?;
    let html = env.get_template("report.html")?.render(minijinja::context! {
        title => input.title,
        summary => input.run_summary.map(|s| serde_json::to_string_pretty(s).unwrap_or_default()),
        analysis => input.analysis,
        plots => plots,
        examples => shown,
        examples_total => input.examples.len(),
        evals => input.evals,
    })?;
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{text_stats, TextSet};

    #[test]
    fn renders_escaped_self_contained_page() {
        let sets = vec![text_stats(&TextSet {
            name: "rewrite".into(),
            texts: vec!["a b c d".into(), "e f".into()],
        })];
        let run = RunStats {
            score_histogram: [1, 0, 2, 0, 3, 4],
            keep_min_score: 4,
            scored: 9,
            kept: 7,
            share_kept: 7.0 / 9.0,
            ..Default::default()
        };
        let analysis = Analysis {
            sets,
            run: Some(run),
            map: vec![
                MapPoint {
                    set: "rewrite".into(),
                    x: 0.1,
                    y: -0.2,
                },
                MapPoint {
                    set: "distill".into(),
                    x: 0.3,
                    y: 0.4,
                },
            ],
            ..Default::default()
        };
        let examples = vec![Example {
            id: "doc-1".into(),
            document: "<script>alert(1)</script> text".into(),
            instruction: Some("Explain <b>this</b>".into()),
            score: Some(5),
            curation: Some("Reasoning: fine\nScore: 5".into()),
            rewrite: Some("Grounded part. Made-up part.".into()),
            distilled: None,
            outputs: [("title".to_string(), "A title".to_string())].into(),
            kept: true,
            rewrite_spans: crate::analyze::rewrite_spans(
                "Grounded part. Made-up part.",
                &[
                    serde_json::json!({"start": 0, "end": 14, "support": 0.9}),
                    serde_json::json!({"start": 15, "end": 28, "support": 0.1}),
                ],
                0.5,
            ),
            relevance: Some(0.8),
            check_reasons: vec!["response_not_grounded".into()],
        }];
        let html = render(&ReportInput {
            title: "t".into(),
            run_summary: None,
            analysis: Some(&analysis),
            examples: &examples,
            max_examples: 10,
            evals: &[],
            train: &[],
        })
        .unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
                || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "document text is escaped"
        );
        assert!(!html.contains("<script>alert(1)"));
        assert_eq!(
            html.matches("<svg").count(),
            3,
            "score, length and map plots"
        );
        assert!(html.contains("77.8%"), "share kept");
        assert!(html.contains("data-kept=\"1\" data-score=\"5\""));
        // the learned checker's unsupported sentence is highlighted, the supported one is not
        assert!(
            html.contains("<mark class=\"unsupported\" title=\"support 0.1\">Made-up part.</mark>"),
            "{html}"
        );
        assert!(!html.contains("<mark class=\"unsupported\" title=\"support 0.9\">"));
        assert!(html.contains("response_not_grounded"));
        // outputs of a stage defined in the config sit beside the distilled response
        assert!(html.contains("<b>title:</b> A title"), "{html}");
        assert!(!html.contains("<script src") && !html.contains("<link "));
    }

    #[test]
    fn win_rate_plot_has_error_bars() {
        let win = crate::judge::win_rate(&[1.0, 0.5, 0.0, 1.0], &[10.0, 0.0, -5.0, 3.0]);
        let summary = EvalSummary {
            model_generator: "m".into(),
            baseline_generator: "b".into(),
            judge: "j".into(),
            judge_template: "judge".into(),
            pairs: 4,
            unmatched_instructions: 0,
            judgements: 8,
            judgement_failures: 0,
            failed_pairs: 0,
            inconsistent_pairs: 0,
            mean_model_chars: 1.0,
            mean_baseline_chars: 1.0,
            win,
            win_rate_ci95: None,
            reliability: None,
            verdict_win_rate: None,
        };
        let svg = win_rate_svg(&[EvalView {
            name: "m-vs-b".into(),
            summary,
            results: vec![],
        }])
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("m-vs-b"));
    }

    #[test]
    fn loss_curves_come_from_progress_lines_and_bad_lines_are_counted() {
        let text = "{\"step\":0,\"eval_loss\":2.9}\n{\"step\":1,\"loss\":3.1,\"lr\":1e-4}\nnot json\n{\"step\":2,\"loss\":2.5}\n{\"loss\":1.0}\n{\"step\":2,\"eval_loss\":2.4}\n";
        let (c, bad) = TrainCurve::from_progress("myx", text);
        assert_eq!(c.loss, vec![(1, 3.1), (2, 2.5)]);
        assert_eq!(c.eval_loss, vec![(0, 2.9), (2, 2.4)]);
        assert_eq!(bad, 2);
        let html = render(&ReportInput {
            title: "t".into(),
            run_summary: None,
            analysis: None,
            examples: &[],
            max_examples: 10,
            evals: &[],
            train: &[c],
        })
        .unwrap();
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("myx"));
    }
}
