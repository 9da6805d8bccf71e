//! Markdown to HTML for the project's self-contained pages (`compare -o html`, the flow's
//! reports). Pure.

/// `md` as HTML, with tables. Raw HTML in the text (a name or an annotation taken from a
/// manifest, for example) is shown as escaped text, never passed through.
pub fn html(md: &str) -> String {
    let parser =
        pulldown_cmark::Parser::new_ext(md, pulldown_cmark::Options::ENABLE_TABLES).map(|event| {
            match event {
                pulldown_cmark::Event::Html(raw) | pulldown_cmark::Event::InlineHtml(raw) => {
                    pulldown_cmark::Event::Text(raw)
                }
                other => other,
            }
        });
    let mut body = String::new();
    pulldown_cmark::html::push_html(&mut body, parser);
    body
}

#[cfg(test)]
mod tests {
    #[test]
    fn raw_html_is_escaped_and_tables_render() {
        let out = super::html("| a |\n|---|\n| <script>x</script> |\n");
        assert!(
            out.contains("<table>") && out.contains("&lt;script&gt;"),
            "{out}"
        );
        assert!(!out.contains("<script>"));
    }
}
