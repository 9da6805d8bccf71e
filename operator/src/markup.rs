//! Markdown to HTML for the project's self-contained pages (`compare -o html`, the flow's
//! reports). Pure.

use pulldown_cmark::{Event, Tag, TagEnd};

/// `value`, taken from outside the project (a manifest's name, annotation or prefix), as
/// Markdown that shows it literally wherever it is placed in a line: every character that can
/// open markup in the middle of a line is escaped (CommonMark lets any ASCII punctuation be),
/// so are a leading list marker and the dot or parenthesis of a leading number, and line
/// breaks become spaces, so that the value stays in its table cell or list item. Punctuation
/// that cannot open markup there (`-`, `.`, `,`, `:`, `/`, parentheses, quotes and the like)
/// is left as it is, so that the Markdown stays readable.
pub fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let leading_digits = value.bytes().take_while(u8::is_ascii_digit).count();
    for (i, c) in value.char_indices() {
        let opens = match c {
            '\n' | '\r' | '\t' => {
                out.push(' ');
                continue;
            }
            '-' | '+' => i == 0,
            '.' | ')' => i > 0 && i == leading_digits,
            ',' | ':' | ';' | '/' | '(' | '\'' | '"' | '?' | '@' | '%' | '$' | '=' => false,
            c => c.is_ascii_punctuation(),
        };
        if opens {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether a link's destination may stay a link: a web or mail address, or one within the
/// page or the site. Anything else with a scheme (`javascript:`, `data:`, and whatever a
/// browser might read as one once it drops white space) is not.
fn safe_destination(dest: &str) -> bool {
    let lower = dest.trim_start().to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
        || !dest.contains(':')
}

/// `md` as HTML, with tables. Raw HTML in the text (a name or an annotation taken from a
/// manifest, for example) is shown as escaped text, never passed through; an image is shown
/// as its description, never loaded, and a link whose destination is not a web or mail
/// address (`javascript:`, `data:`) as its text.
pub fn html(md: &str) -> String {
    let mut dropped_links = Vec::new();
    let parser = pulldown_cmark::Parser::new_ext(md, pulldown_cmark::Options::ENABLE_TABLES)
        .filter_map(|event| match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
            Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
            Event::Start(Tag::Link { ref dest_url, .. }) => {
                let drop = !safe_destination(dest_url);
                dropped_links.push(drop);
                (!drop).then_some(event)
            }
            Event::End(TagEnd::Link) => {
                let drop = dropped_links.pop().unwrap_or(false);
                (!drop).then_some(event)
            }
            other => Some(other),
        });
    let mut body = String::new();
    pulldown_cmark::html::push_html(&mut body, parser);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_is_escaped_and_tables_render() {
        let out = html("| a |\n|---|\n| <script>x</script> |\n");
        assert!(
            out.contains("<table>") && out.contains("&lt;script&gt;"),
            "{out}"
        );
        assert!(!out.contains("<script>"));
    }

    #[test]
    fn images_are_never_loaded_and_script_links_are_text() {
        let out = html(
            "![tracker](https://example.org/t.png) [click](javascript:alert(1)) \
             [also](java&#9;script:alert(2)) [data](data:text/html,x) [site](https://example.org/)",
        );
        assert!(!out.contains("<img"), "{out}");
        assert!(
            !out.contains("javascript") && !out.contains("data:"),
            "{out}"
        );
        assert!(out.contains("tracker") && out.contains("click") && out.contains("also"));
        assert!(
            out.contains("<a href=\"https://example.org/\">site</a>"),
            "{out}"
        );
    }

    /// A value placed by [`literal`] in a table cell, a list item or bold text comes out as
    /// the very characters it had, with no element of its own.
    #[test]
    fn a_literal_value_shows_as_written_wherever_it_stands() {
        let hostile = [
            "[click](javascript:alert(1))",
            "![x](https://example.org/t.png)",
            "<b>bold</b> &amp; **strong** _em_ `code` ~~gone~~",
            "a | b",
            "# heading",
            "- item",
            "+ item",
            "1. first",
            "2) second",
            "***",
            "line\nbreak",
            "back\\slash\\",
            "eu-north-1 (Stockholm), 10.5: a/b; \"q\" 'q' 50% $1 a=b x@y?",
        ];
        for value in hostile {
            let v = literal(value);
            let md = format!("| k |\n|---|\n| {v} |\n\n- {v}: {v}\n\n**{v}**\n");
            let out = html(&md);
            let shown = value.replace(['\n'], " ");
            let escaped = shown
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            assert_eq!(
                out.matches(&escaped).count(),
                4,
                "{value:?} shown as written in the cell, the item and the bold text: {out}"
            );
            for tag in [
                "<a ", "<img", "<em>", "<code>", "<h1>", "<ol", "<del>", "<hr",
            ] {
                assert!(!out.contains(tag), "{value:?} made {tag}: {out}");
            }
            assert_eq!(out.matches("<strong>").count(), 1, "{value:?}: {out}");
            assert_eq!(out.matches("<ul>").count(), 1, "{value:?}: {out}");
            assert_eq!(out.matches("<td>").count(), 1, "{value:?}: {out}");
        }
        assert_eq!(
            literal("eu-north-1 (Stockholm), 10.5"),
            "eu-north-1 (Stockholm), 10.5"
        );
    }
}
