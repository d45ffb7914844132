//! Just enough Markdown to show docs/PROTOCOL.md at `/inspect/protocol`: headings (with ids,
//! so the page can link to a route), paragraphs, lists, tables, fenced code, and inline code,
//! bold and links. Everything is escaped; nothing in the text can become markup.

use std::fmt::Write as _;

/// The id of a heading: lower case, letters and digits, words joined by `-`.
/// `` `POST /worker/events` `` → `post-worker-events`.
pub(crate) fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if matches!(c, ' ' | '/' | '-' | '_' | '.') && !out.ends_with('-') && !out.is_empty()
        {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// A whole HTML page titled `title` with `markdown` rendered in it.
pub(crate) fn page(title: &str, markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() * 2);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/inspect/style.css\"></head>\
         <body class=\"doc\"><main class=\"prose\">\n",
        escape(title)
    );
    render(markdown, &mut out);
    out.push_str("</main></body></html>\n");
    out
}

/// Renders `markdown` into `out`.
pub(crate) fn render(markdown: &str, out: &mut String) {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    let mut paragraph: Vec<&str> = Vec::new();
    let flush = |paragraph: &mut Vec<&str>, out: &mut String| {
        if !paragraph.is_empty() {
            out.push_str("<p>");
            inline(&paragraph.join(" "), out);
            out.push_str("</p>\n");
            paragraph.clear();
        }
    };
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            flush(&mut paragraph, out);
            i += 1;
        } else if let Some(fence) = trimmed.strip_prefix("```") {
            flush(&mut paragraph, out);
            let _ = fence;
            out.push_str("<pre><code>");
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                out.push_str(&escape(lines[i]));
                out.push('\n');
                i += 1;
            }
            out.push_str("</code></pre>\n");
            i += 1;
        } else if let Some((level, text)) = heading(trimmed) {
            flush(&mut paragraph, out);
            let _ = write!(out, "<h{level} id=\"{}\">", slug(&plain(text)));
            inline(text, out);
            let _ = writeln!(out, "</h{level}>");
            i += 1;
        } else if trimmed.starts_with('|') {
            flush(&mut paragraph, out);
            let start = i;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                i += 1;
            }
            table(&lines[start..i], out);
        } else if list_item(trimmed).is_some() {
            flush(&mut paragraph, out);
            let ordered = trimmed.starts_with(|c: char| c.is_ascii_digit());
            out.push_str(if ordered { "<ol>\n" } else { "<ul>\n" });
            while i < lines.len() {
                let Some(first) = list_item(lines[i].trim_start()) else {
                    break;
                };
                let mut item = vec![first];
                i += 1;
                // Continuation lines are indented.
                while i < lines.len()
                    && lines[i].starts_with("  ")
                    && list_item(lines[i].trim_start()).is_none()
                {
                    item.push(lines[i].trim());
                    i += 1;
                }
                out.push_str("<li>");
                inline(&item.join(" "), out);
                out.push_str("</li>\n");
            }
            out.push_str(if ordered { "</ol>\n" } else { "</ul>\n" });
        } else {
            paragraph.push(trimmed);
            i += 1;
        }
    }
    flush(&mut paragraph, out);
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let text = line.get(level..)?.strip_prefix(' ')?;
    (1..=6).contains(&level).then_some((level, text.trim()))
}

/// The text of a list item: `- x`, `* x` or `1. x`.
fn list_item(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
        return Some(rest);
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 {
        return line[digits..].strip_prefix(". ");
    }
    None
}

/// Splits a table row on `|`, keeping a `|` inside code spans or escaped as `\|`.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|');
    let row = row.strip_suffix('|').unwrap_or(row);
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut code = false;
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '`' => {
                code = !code;
                cell.push('`');
            }
            '|' if !code => cells.push(std::mem::take(&mut cell)),
            c => cell.push(c),
        }
    }
    cells.push(cell);
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

fn table(rows: &[&str], out: &mut String) {
    let separator = |r: &str| r.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ' | '\t'));
    out.push_str("<table>\n");
    let mut head = true;
    for row in rows {
        if separator(row) {
            continue;
        }
        let tag = if head && rows.get(1).is_some_and(|r| separator(r)) {
            "th"
        } else {
            "td"
        };
        head = false;
        out.push_str("<tr>");
        for cell in cells(row) {
            let _ = write!(out, "<{tag}>");
            inline(&cell, out);
            let _ = write!(out, "</{tag}>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The text of inline markup without its marks (for heading ids).
fn plain(text: &str) -> String {
    text.replace(['`', '*'], "")
}

/// Inline code, bold and links; the rest escaped.
fn inline(text: &str, out: &mut String) {
    let mut rest = text;
    while !rest.is_empty() {
        let next = rest.find(['`', '*', '[']).unwrap_or(rest.len());
        out.push_str(&escape(&rest[..next]));
        rest = &rest[next..];
        if rest.is_empty() {
            break;
        }
        if let Some(code) = rest.strip_prefix('`') {
            if let Some(end) = code.find('`') {
                let _ = write!(out, "<code>{}</code>", escape(&code[..end]));
                rest = &code[end + 1..];
                continue;
            }
        } else if let Some(bold) = rest.strip_prefix("**") {
            if let Some(end) = bold.find("**") {
                out.push_str("<strong>");
                inline(&bold[..end], out);
                out.push_str("</strong>");
                rest = &bold[end + 2..];
                continue;
            }
        } else if let Some(link) = rest.strip_prefix('[') {
            if let Some((label, after)) = link.split_once("](") {
                if let Some(end) = after.find(')') {
                    let target = &after[..end];
                    // Only links within the documents (anchors and relative paths).
                    let safe = !target.contains(':');
                    if safe {
                        let _ = write!(out, "<a href=\"{}\">", escape(target));
                        inline(label, out);
                        out.push_str("</a>");
                    } else {
                        inline(label, out);
                    }
                    rest = &after[end + 1..];
                    continue;
                }
            }
        }
        // A lone mark: keep it as text.
        let mark_len = rest.chars().next().map_or(1, char::len_utf8);
        out.push_str(&escape(&rest[..mark_len]));
        rest = &rest[mark_len..];
    }
}

/// HTML-escapes `text`.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(md: &str) -> String {
        let mut out = String::new();
        render(md, &mut out);
        out
    }

    #[test]
    fn slugs_match_the_routes() {
        assert_eq!(slug("`POST /worker/events`"), "post-worker-events");
        assert_eq!(slug("PUT /worker"), "put-worker");
        assert_eq!(
            slug("POST /worker/events/delivery"),
            "post-worker-events-delivery"
        );
        assert_eq!(slug("Thread sync"), "thread-sync");
    }

    #[test]
    fn blocks_and_inlines() {
        let out = html(
            "# Title\n\nSome `code <x>` and **bold**\ntext.\n\n- one\n  more\n- two\n\n\
             | a | b |\n|---|---|\n| `x \\| y` | [l](#t) |\n\n```\n<raw>\n```\n1. first\n",
        );
        assert!(out.contains("<h1 id=\"title\">Title</h1>"));
        assert!(
            out.contains("<p>Some <code>code &lt;x&gt;</code> and <strong>bold</strong> text.</p>")
        );
        assert!(out.contains("<li>one more</li>\n<li>two</li>"));
        assert!(out.contains("<th>a</th><th>b</th>"));
        assert!(out.contains("<td><code>x | y</code></td><td><a href=\"#t\">l</a></td>"));
        assert!(out.contains("<pre><code>&lt;raw&gt;\n</code></pre>"));
        assert!(out.contains("<ol>\n<li>first</li>"));
    }

    #[test]
    fn nothing_becomes_markup() {
        let out = html("<script>alert(1)</script> [x](javascript:alert(1)) * ` [");
        assert!(!out.contains("<script"));
        assert!(!out.contains("href=\"javascript"));
    }

    #[test]
    fn the_protocol_document_has_an_anchor_per_route() {
        let out = page("p", super::super::PROTOCOL_MD);
        for route in tether_core::session::Endpoint::ALL {
            let id = format!("id=\"{}\"", slug(&route.to_string()));
            assert!(out.contains(&id), "{route}: {id}");
        }
    }
}
