//! A small SVG line chart for the examples' figures: a few series over one
//! x axis, optional marked points, no dependencies.

use std::fmt::Write as _;

/// One line of a chart.
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// `(x, y)` points, in order.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (a baseline).
    pub dashed: bool,
}

/// A chart: series, marked points (drawn as red crosses) and labels.
pub struct Chart {
    /// The x axis' label.
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Points to mark, with the legend entry of the marks.
    pub marks: Vec<(f64, f64)>,
    /// The legend entry of the marks.
    pub marks_name: String,
}

const COLOURS: [&str; 5] = ["#777777", "#d62728", "#1f77b4", "#2ca02c", "#9467bd"];

impl Chart {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let (w, h, left, bottom, top, right) = (680.0, 400.0, 60.0, 50.0, 20.0, 170.0);
        let all: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .chain(self.marks.iter().copied())
            .collect();
        let (x0, x1) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (y0, y1) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let (y0, y1) = ((y0 * 20.0).floor() / 20.0, (y1 * 20.0).ceil() / 20.0);
        let x = |v: f64| left + (v - x0) / (x1 - x0).max(1e-9) * (w - left - right);
        let y = |v: f64| h - bottom - (v - y0) / (y1 - y0).max(1e-9) * (h - bottom - top);
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        let axis_y = h - bottom;
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"black\"/>\
             <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{axis_y}\" stroke=\"black\"/>",
            w - right
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
             <text x=\"15\" y=\"{}\" transform=\"rotate(-90 15 {})\" text-anchor=\"middle\">{}</text>",
            (left + w - right) / 2.0,
            h - 10.0,
            self.x_label,
            h / 2.0,
            h / 2.0,
            self.y_label
        );
        for tick in 0..=5 {
            let (vx, vy) = (x0 + (x1 - x0) * tick as f64 / 5.0, y0 + (y1 - y0) * tick as f64 / 5.0);
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{vy:.2}</text>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{vx:.0}</text>",
                left - 5.0,
                y(vy) + 4.0,
                x(vx),
                axis_y + 16.0
            );
        }
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let points: Vec<String> = series
                .points
                .iter()
                .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
                .collect();
            let dash = if series.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
                points.join(" "),
                w - right + 10.0,
                top + 20.0 + 18.0 * i as f64,
                series.name
            );
        }
        for (mx, my) in &self.marks {
            let (cx, cy) = (x(*mx), y(*my));
            let _ = writeln!(
                s,
                "<path d=\"M{} {} L{} {} M{} {} L{} {}\" stroke=\"#d62728\" stroke-width=\"2\"/>",
                cx - 4.0,
                cy - 4.0,
                cx + 4.0,
                cy + 4.0,
                cx - 4.0,
                cy + 4.0,
                cx + 4.0,
                cy - 4.0
            );
        }
        if !self.marks.is_empty() {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" fill=\"#d62728\">✕ {}</text>",
                w - right + 10.0,
                top + 20.0 + 18.0 * self.series.len() as f64,
                self.marks_name
            );
        }
        s.push_str("</svg>\n");
        s
    }
}
