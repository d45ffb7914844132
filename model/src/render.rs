//! Draws a [`Timeline`] as one self-contained SVG.
//!
//! The picture, top to bottom: a caption; the status lane (a band coloured by the status in
//! force, a tick per change, and each retry's wait as a bar); a lane per channel with each
//! request as a bar from send to outcome, coloured by outcome class, over shaded faults; a
//! graph of the uploaders' queue depth (events and bytes) and one of the state uploader's
//! unacknowledged patches; the time axis in seconds; the legend. Partitions shade every lane,
//! restarts and takeovers are vertical lines. Every element that stands for something has a
//! `<title>`, shown on hover.
//!
//! [`render`] is a pure function: the same timeline gives the same bytes. Numbers are
//! formatted with a fixed number of decimals, and the size is bounded whatever the run's
//! length: requests, faults, status ticks and waits narrower than a pixel are merged with
//! their neighbours (a merged bar takes the worst class among its requests and its title
//! counts them), and the graphs have at most one step per pixel column.
//!
//! The markup is written by hand: it is a few kinds of element with fixed attributes, and a
//! builder crate would allocate a node per attribute for the same text.

use std::fmt::{self, Write as _};

use crate::timeline::{Bar, Class, Mark, Sample, Span, SpanKind, StatusKind, Timeline};
use tether_core::time::Instant;

/// The picture's width in pixels.
pub const WIDTH: u32 = 1600;
const LEFT: f64 = 120.0;
const RIGHT: f64 = 24.0;
const PLOT: f64 = WIDTH as f64 - LEFT - RIGHT;
const LANE: f64 = 22.0;
const BAR: f64 = 14.0;
const GRAPH: f64 = 60.0;
const PATCH_GRAPH: f64 = 36.0;
/// A run of narrow requests is merged while it spans at most this many pixels.
const MERGE_PX: f64 = 2.0;
/// At most this many labels are listed in a merged element's title.
const LISTED: usize = 4;

const STYLE: &str = "\
text{fill:#222}.lab{text-anchor:end}.ax{fill:#555;text-anchor:middle}\
.grid{stroke:#e4e4e4}.lane{fill:#f7f7f7}\
.c0{fill:#3a9a48}.c1{fill:#e8a33c}.c2{fill:#8e6cc4}.c3{fill:#d6453d}.c4{fill:#555}.c5{fill:#b9b9b9}\
.f{fill:#f3c4c0;fill-opacity:.55}.p{fill:#6f7f95;fill-opacity:.18}\
.rs{stroke:#2f6fb3;stroke-width:1.5;stroke-dasharray:4 3}.tk{stroke:#111;stroke-width:2}\
.k0{fill:#7fb2e5}.k1{fill:#3a9a48}.k2{fill:#e8a33c}.k3{fill:#f07f1f}.k4{fill:#d6453d}.k5{fill:#8e2f8f}.k6{fill:#777}\
.b0{fill:#dbe9f7}.b1{fill:#e2f2e4}.b2{fill:#fbecd5}.b3{fill:#fcdcc2}.b4{fill:#f6d3d1}.b5{fill:#ead3ea}.b6{fill:#e6e6e6}\
.w{fill:#e8a33c;fill-opacity:.5}\
.ge{fill:none;stroke:#2f6fb3;stroke-width:1.2}.gb{fill:none;stroke:#d6453d;stroke-width:1.2}\
.gp{fill:none;stroke:#8e6cc4;stroke-width:1.2}";

/// Draws `timeline` as an SVG document.
///
/// ```
/// use tether_core::Instant;
/// use tether_model::render::render;
/// use tether_model::timeline::Recorder;
///
/// let svg = render(&Recorder::new("nothing happened").finish(Instant::from_secs(10)));
/// assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
/// assert_eq!(svg, render(&Recorder::new("nothing happened").finish(Instant::from_secs(10))));
/// ```
pub fn render(timeline: &Timeline) -> String {
    let mut out = String::with_capacity(64 * 1024 + timeline.bars.len().min(20_000) * 120);
    let scale = Scale::new(timeline.end);
    let lanes = timeline.lanes();

    let status_top = 50.0;
    let lanes_top = status_top + LANE + 6.0;
    let lanes_bottom = lanes_top + LANE * lanes.len() as f64;
    let graph_top = lanes_bottom + 14.0;
    let patch_top = graph_top + GRAPH + 10.0;
    let axis_y = patch_top + PATCH_GRAPH + 4.0;
    let legend_top = axis_y + 30.0;
    let height = legend_top + 58.0;

    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{h}\" \
         viewBox=\"0 0 {WIDTH} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <style>{STYLE}</style>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n",
        h = F0(height)
    );
    let faults = timeline
        .spans
        .iter()
        .filter(|s| s.kind == SpanKind::Fault)
        .count();
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\
         <text x=\"{}\" y=\"20\" class=\"lab\">{} s, {} requests, {} faulted, {} status changes</text>",
        F1(LEFT),
        Esc(&timeline.title),
        F1(LEFT + PLOT),
        F1(secs(timeline.end)),
        timeline.bars.len(),
        faults,
        timeline.marks.len()
    );

    // Lane backgrounds and labels.
    lane_background(&mut out, status_top, "status");
    for (i, lane) in lanes.iter().enumerate() {
        lane_background(&mut out, lanes_top + LANE * i as f64, lane.name());
    }
    graph_frame(&mut out, graph_top, GRAPH, "queue depth");
    graph_frame(&mut out, patch_top, PATCH_GRAPH, "state pending");

    // The time axis and its grid.
    axis(&mut out, &scale, status_top, axis_y);

    // Partitions over everything; faults under their lane's bars.
    for span in timeline
        .spans
        .iter()
        .filter(|s| s.kind == SpanKind::Partition)
    {
        let (x0, x1) = (scale.x(span.start), scale.x(span.end));
        let _ = writeln!(
            out,
            "<rect class=\"p\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{}</title></rect>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#445\">partition</text>",
            F1(x0),
            F1(status_top),
            F1((x1 - x0).max(1.0)),
            F1(axis_y - status_top),
            Esc(&span.label),
            F1(x0 + 2.0),
            F1(status_top - 3.0)
        );
    }
    for (i, lane) in lanes.iter().enumerate() {
        let y = lanes_top + LANE * i as f64;
        let spans = timeline
            .spans
            .iter()
            .filter(|s| s.kind == SpanKind::Fault && s.lane == Some(*lane));
        fault_spans(&mut out, &scale, spans, y);
        let bars = timeline.bars.iter().filter(|b| b.lane == *lane);
        request_bars(&mut out, &scale, bars, y + (LANE - BAR) / 2.0);
    }

    status_lane(&mut out, &scale, &timeline.marks, timeline.end, status_top);

    // Restarts and takeovers on top of the lanes.
    for span in timeline
        .spans
        .iter()
        .filter(|s| matches!(s.kind, SpanKind::Restart | SpanKind::Takeover))
    {
        let x = scale.x(span.start);
        let (class, name) = match span.kind {
            SpanKind::Takeover => ("tk", "takeover"),
            _ => ("rs", "restart"),
        };
        // Near the right edge the label goes to the left of the line.
        let (anchor, label_x) = if x > LEFT + PLOT - 80.0 {
            (" class=\"lab\"", x - 3.0)
        } else {
            ("", x + 3.0)
        };
        let _ = writeln!(
            out,
            "<g><title>{}</title><line class=\"{class}\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/>\
             <text{anchor} x=\"{}\" y=\"{}\" font-size=\"10\">{name}</text></g>",
            Esc(&span.label),
            F1(status_top - 12.0),
            F1(lanes_bottom),
            F1(label_x),
            F1(status_top - 14.0),
            x = F1(x),
        );
    }

    graphs(&mut out, &scale, &timeline.samples, graph_top, patch_top);
    legend(&mut out, legend_top);
    out.push_str("</svg>\n");
    out
}

/// Maps simulated time to the x axis.
struct Scale {
    end_us: f64,
}

impl Scale {
    fn new(end: Instant) -> Self {
        Scale {
            end_us: end.as_micros().max(1) as f64,
        }
    }

    fn x(&self, t: Instant) -> f64 {
        LEFT + (t.as_micros() as f64).min(self.end_us) * PLOT / self.end_us
    }
}

fn secs(t: Instant) -> f64 {
    t.as_micros() as f64 / 1e6
}

fn lane_background(out: &mut String, y: f64, name: &str) {
    let _ = writeln!(
        out,
        "<rect class=\"lane\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\
         <text class=\"lab\" x=\"{}\" y=\"{}\">{name}</text>",
        F1(LEFT),
        F1(y + 1.0),
        F1(PLOT),
        F1(LANE - 2.0),
        F1(LEFT - 8.0),
        F1(y + LANE / 2.0 + 4.0)
    );
}

fn graph_frame(out: &mut String, y: f64, h: f64, name: &str) {
    let _ = writeln!(
        out,
        "<rect class=\"lane\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\
         <text class=\"lab\" x=\"{}\" y=\"{}\">{name}</text>",
        F1(LEFT),
        F1(y),
        F1(PLOT),
        F1(h),
        F1(LEFT - 8.0),
        F1(y + h / 2.0 + 4.0)
    );
}

fn axis(out: &mut String, scale: &Scale, top: f64, y: f64) {
    const STEPS: [u64; 14] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
    ];
    let end_s = scale.end_us / 1e6;
    let step = STEPS
        .into_iter()
        .find(|s| end_s / *s as f64 <= 12.0)
        .unwrap_or_else(|| (end_s / 12.0).ceil() as u64);
    let mut t = 0;
    while t as f64 <= end_s {
        let x = scale.x(Instant::from_secs(t));
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/>\
             <text class=\"ax\" x=\"{x}\" y=\"{}\">{t} s</text>",
            F1(top),
            F1(y),
            F1(y + 14.0),
            x = F1(x)
        );
        t += step;
    }
}

/// One element to draw for a run of requests (or one request).
struct Group {
    x0: f64,
    x1: f64,
    /// Whether it started with a bar narrower than a pixel: only such groups take more.
    narrow: bool,
    class: Class,
    counts: [u32; Class::ALL.len()],
    faulted: u32,
    first: usize,
    last: usize,
}

fn request_bars<'a>(out: &mut String, scale: &Scale, bars: impl Iterator<Item = &'a Bar>, y: f64) {
    let bars: Vec<&Bar> = bars.collect();
    let mut group: Option<Group> = None;
    for (i, bar) in bars.iter().enumerate() {
        let (x0, x1) = (scale.x(bar.start), scale.x(bar.end));
        let narrow = x1 - x0 < 1.0;
        if let Some(g) = &mut group {
            if narrow && g.narrow && x1 <= g.x0 + MERGE_PX {
                g.x1 = g.x1.max(x1);
                if bar.class.severity() > g.class.severity() {
                    g.class = bar.class;
                }
                g.counts[class_index(bar.class)] += 1;
                g.faulted += u32::from(bar.faulted);
                g.last = i;
                continue;
            }
            draw_group(out, g, &bars, y);
        }
        let mut counts = [0; Class::ALL.len()];
        counts[class_index(bar.class)] = 1;
        group = Some(Group {
            x0,
            x1,
            narrow,
            class: bar.class,
            counts,
            faulted: u32::from(bar.faulted),
            first: i,
            last: i,
        });
    }
    if let Some(g) = &group {
        draw_group(out, g, &bars, y);
    }
}

fn draw_group(out: &mut String, g: &Group, bars: &[&Bar], y: f64) {
    let _ = write!(
        out,
        "<rect class=\"c{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>",
        class_index(g.class),
        F1(g.x0),
        F1(y),
        F1((g.x1 - g.x0).max(1.0)),
        F1(BAR)
    );
    if g.first == g.last {
        let _ = write!(out, "{}", Esc(&bars[g.first].details));
    } else {
        let n = g.last - g.first + 1;
        let _ = write!(
            out,
            "{n} requests from {} to {}:",
            F3(secs(bars[g.first].start)),
            F3(secs(bars[g.last].end))
        );
        for (class, count) in Class::ALL.iter().zip(g.counts) {
            if count > 0 {
                let _ = write!(out, " {count} {}", class.name());
            }
        }
        if g.faulted > 0 {
            let _ = write!(out, ", {} faulted", g.faulted);
        }
        for bar in bars[g.first..=g.last].iter().take(LISTED) {
            let _ = write!(out, "\n{}", Esc(&bar.details));
        }
        if n > LISTED {
            let _ = write!(out, "\n…");
        }
    }
    out.push_str("</title></rect>\n");
}

fn class_index(class: Class) -> usize {
    Class::ALL.iter().position(|c| *c == class).unwrap_or(0)
}

/// Merges intervals (in start order) closer than a pixel; calls `draw` with each union and
/// the indices of its members.
fn merge_intervals(
    intervals: impl Iterator<Item = (f64, f64)>,
    mut draw: impl FnMut(f64, f64, std::ops::Range<usize>),
) {
    let mut current: Option<(f64, f64, usize)> = None;
    let mut n = 0;
    for (i, (x0, x1)) in intervals.enumerate() {
        n = i + 1;
        match &mut current {
            Some((_, end, _)) if x0 <= *end + 1.0 => *end = end.max(x1),
            _ => {
                if let Some((a, b, first)) = current {
                    draw(a, b, first..i);
                }
                current = Some((x0, x1, i));
            }
        }
    }
    if let Some((a, b, first)) = current {
        draw(a, b, first..n);
    }
}

fn fault_spans<'a>(out: &mut String, scale: &Scale, spans: impl Iterator<Item = &'a Span>, y: f64) {
    let spans: Vec<&Span> = spans.collect();
    merge_intervals(
        spans.iter().map(|s| (scale.x(s.start), scale.x(s.end))),
        |x0, x1, members| {
            let _ = write!(
                out,
                "<rect class=\"f\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>",
                F1(x0),
                F1(y + 1.0),
                F1((x1 - x0).max(1.0)),
                F1(LANE - 2.0)
            );
            list_labels(
                out,
                "faults",
                spans[members].iter().map(|s| s.label.as_str()),
            );
            out.push_str("</title></rect>\n");
        },
    );
}

fn list_labels<'a>(out: &mut String, plural: &str, labels: impl ExactSizeIterator<Item = &'a str>) {
    let n = labels.len();
    if n > 1 {
        let _ = writeln!(out, "{n} {plural}:");
    }
    for (i, label) in labels.take(LISTED).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(out, "{}", Esc(label));
    }
    if n > LISTED {
        out.push_str("\n…");
    }
}

fn kind_index(kind: StatusKind) -> usize {
    StatusKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

fn status_lane(out: &mut String, scale: &Scale, marks: &[Mark], end: Instant, top: f64) {
    // The band: the status in force, merged below a pixel into what came before.
    let mut bands: Vec<(f64, f64, StatusKind)> = Vec::new();
    for (i, mark) in marks.iter().enumerate() {
        let x0 = scale.x(mark.at);
        let x1 = scale.x(marks.get(i + 1).map_or(end, |m| m.at));
        match bands.last_mut() {
            Some(last) if last.2 == mark.kind || x1 - x0 < 1.0 => last.1 = x1,
            _ => bands.push((x0, x1, mark.kind)),
        }
    }
    for (x0, x1, kind) in bands {
        if x1 > x0 {
            let _ = writeln!(
                out,
                "<rect class=\"b{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                kind_index(kind),
                F1(x0),
                F1(top + 1.0),
                F1(x1 - x0),
                F1(LANE - 2.0)
            );
        }
    }
    // Retry waits, as bars in the middle of the lane.
    let waits: Vec<&Mark> = marks.iter().filter(|m| m.until.is_some()).collect();
    merge_intervals(
        waits
            .iter()
            .map(|m| (scale.x(m.at), scale.x(m.until.unwrap_or(m.at)))),
        |x0, x1, members| {
            let _ = write!(
                out,
                "<rect class=\"w\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"6\"><title>",
                F1(x0),
                F1(top + LANE / 2.0 - 3.0),
                F1((x1 - x0).max(1.0)),
            );
            list_labels(
                out,
                "retry waits",
                waits[members].iter().map(|m| m.label.as_str()),
            );
            out.push_str("</title></rect>\n");
        },
    );
    // A tick per change; changes within a pixel share one, coloured by the last.
    let mut i = 0;
    while i < marks.len() {
        let x = scale.x(marks[i].at);
        let mut j = i + 1;
        while j < marks.len() && scale.x(marks[j].at) - x < 1.0 {
            j += 1;
        }
        let _ = write!(
            out,
            "<rect class=\"k{}\" x=\"{}\" y=\"{}\" width=\"2\" height=\"{}\"><title>",
            kind_index(marks[j - 1].kind),
            F1(x - 1.0),
            F1(top + 1.0),
            F1(LANE - 2.0)
        );
        list_labels(
            out,
            "status changes",
            marks[i..j].iter().map(|m| m.label.as_str()),
        );
        out.push_str("</title></rect>\n");
        i = j;
    }
}

/// The maximum of a step function over each pixel column.
fn columns(scale: &Scale, samples: &[Sample], value: impl Fn(&Sample) -> u64) -> Vec<u64> {
    let n = PLOT as usize;
    let mut cols = vec![0u64; n];
    for (i, sample) in samples.iter().enumerate() {
        let col = |t: Instant| (((scale.x(t) - LEFT).floor()) as usize).min(n - 1);
        let c0 = col(sample.at);
        let c1 = samples.get(i + 1).map_or(n - 1, |next| col(next.at));
        let v = value(sample);
        for c in &mut cols[c0..=c1.max(c0)] {
            *c = (*c).max(v);
        }
    }
    cols
}

/// A step path through the columns, scaled so `max` is at the top.
fn step_path(out: &mut String, class: &str, cols: &[u64], max: u64, top: f64, h: f64, title: &str) {
    let y = |v: u64| top + h - 2.0 - (v as f64 / max.max(1) as f64) * (h - 6.0);
    let _ = write!(
        out,
        "<path class=\"{class}\" d=\"M{} {}",
        F1(LEFT),
        F1(y(cols.first().copied().unwrap_or(0)))
    );
    let mut previous = cols.first().copied().unwrap_or(0);
    for (c, v) in cols.iter().enumerate().skip(1) {
        if *v != previous {
            let _ = write!(out, "H{}V{}", F1(LEFT + c as f64), F1(y(*v)));
            previous = *v;
        }
    }
    let _ = writeln!(
        out,
        "H{}\"><title>{}</title></path>",
        F1(LEFT + PLOT),
        Esc(title)
    );
}

fn graphs(out: &mut String, scale: &Scale, samples: &[Sample], top: f64, patch_top: f64) {
    let events = columns(scale, samples, |s| s.events);
    let bytes = columns(scale, samples, |s| s.bytes);
    let patches = columns(scale, samples, |s| s.patches);
    let max = |c: &[u64]| c.iter().copied().max().unwrap_or(0);
    let (me, mb, mp) = (max(&events), max(&bytes), max(&patches));
    let events_title = format!("events held by the uploaders, at most {me}");
    let bytes_title = format!("bytes of event JSON held, at most {}", Bytes(mb));
    let patches_title = format!("state patches not acknowledged, at most {mp}");
    step_path(out, "ge", &events, me, top, GRAPH, &events_title);
    step_path(out, "gb", &bytes, mb, top, GRAPH, &bytes_title);
    step_path(
        out,
        "gp",
        &patches,
        mp,
        patch_top,
        PATCH_GRAPH,
        &patches_title,
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#2f6fb3\">events (max {me})</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#d6453d\">bytes (max {})</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#8e6cc4\">patches (max {mp})</text>",
        F1(LEFT + 4.0),
        F1(top + 11.0),
        F1(LEFT + 110.0),
        F1(top + 11.0),
        Bytes(mb),
        F1(LEFT + 4.0),
        F1(patch_top + 11.0),
    );
}

fn legend(out: &mut String, top: f64) {
    let mut x = LEFT;
    let item = |out: &mut String, x: &mut f64, y: f64, swatch: &str, name: &str| {
        let _ = writeln!(
            out,
            "{swatch}<text x=\"{}\" y=\"{}\">{name}</text>",
            F1(*x + 16.0),
            F1(y + 10.0)
        );
        *x += 24.0 + 6.5 * name.len() as f64 + 12.0;
    };
    let _ = writeln!(
        out,
        "<text class=\"lab\" x=\"{}\" y=\"{}\">requests</text>",
        F1(LEFT - 8.0),
        F1(top + 10.0)
    );
    for (i, class) in Class::ALL.iter().enumerate() {
        let swatch = format!(
            "<rect class=\"c{i}\" x=\"{}\" y=\"{}\" width=\"12\" height=\"10\"/>",
            F1(x),
            F1(top + 1.0)
        );
        item(out, &mut x, top, &swatch, class.name());
    }
    let spans = [("f", "fault (planned)"), ("p", "partition")];
    for (class, name) in spans {
        let swatch = format!(
            "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"12\" height=\"10\" stroke=\"#bbb\"/>",
            F1(x),
            F1(top + 1.0)
        );
        item(out, &mut x, top, &swatch, name);
    }
    for (class, name) in [("rs", "server restart"), ("tk", "takeover")] {
        let swatch = format!(
            "<line class=\"{class}\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/>",
            F1(top),
            F1(top + 12.0),
            x = F1(x + 6.0)
        );
        item(out, &mut x, top, &swatch, name);
    }
    let y = top + 22.0;
    let mut x = LEFT;
    let _ = writeln!(
        out,
        "<text class=\"lab\" x=\"{}\" y=\"{}\">status</text>",
        F1(LEFT - 8.0),
        F1(y + 10.0)
    );
    for (i, kind) in StatusKind::ALL.iter().enumerate() {
        let swatch = format!(
            "<rect class=\"b{i}\" x=\"{}\" y=\"{}\" width=\"12\" height=\"10\"/>\
             <rect class=\"k{i}\" x=\"{}\" y=\"{}\" width=\"2\" height=\"10\"/>",
            F1(x),
            F1(y + 1.0),
            F1(x),
            F1(y + 1.0)
        );
        item(out, &mut x, y, &swatch, kind.name());
    }
    let swatch = format!(
        "<rect class=\"w\" x=\"{}\" y=\"{}\" width=\"12\" height=\"6\"/>",
        F1(x),
        F1(y + 3.0)
    );
    item(out, &mut x, y, &swatch, "retry wait");
}

/// One decimal.
struct F1(f64);

impl fmt::Display for F1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

/// No decimals.
struct F0(f64);

impl fmt::Display for F0 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.0}", self.0)
    }
}

/// Three decimals and a unit: `12.345 s`.
struct F3(f64);

impl fmt::Display for F3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} s", self.0)
    }
}

/// `512 B`, `12.3 KiB`, `4.0 MiB`.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b if b < 1024 => write!(f, "{b} B"),
            b if b < 1024 * 1024 => write!(f, "{:.1} KiB", b as f64 / 1024.0),
            b => write!(f, "{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        }
    }
}

/// Text escaped for SVG content and attribute values.
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                _ => "&quot;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            Esc(r#"a<b & "c">"#).to_string(),
            "a&lt;b &amp; &quot;c&quot;&gt;"
        );
    }

    #[test]
    fn narrow_intervals_merge_and_wide_ones_do_not() {
        let mut drawn = Vec::new();
        merge_intervals(
            [(0.0, 0.2), (0.5, 0.7), (10.0, 30.0), (30.5, 31.0)].into_iter(),
            |a, b, members| drawn.push((a, b, members)),
        );
        assert_eq!(drawn, [(0.0, 0.7, 0..2), (10.0, 31.0, 2..4)]);
    }
}
