//! Small HTML helpers every page and the gate share: the document around a
//! body and the stand-alone message page. Pages are `maud` templates, which escape
//! every interpolated value unless it is wrapped in `PreEscaped`; the only
//! `PreEscaped` values are fixed text of this crate and markup already built
//! by `maud`. This file knows no routes, no roles and no database; it
//! imports nothing from the rest of the crate.

use axum::response::Html;
use maud::{html, Markup, DOCTYPE};

/// A whole document: doctype, `<html lang="en">`, the head (the title and
/// the stylesheet) and `body`, which must be a `body` element.
pub fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Drover" }
                link rel="stylesheet" href="/ui/app.css";
            }
            (body)
        }
    }
}

/// A page for errors and refusals, outside the frame.
pub fn message_page(title: &str, msg: &str) -> Html<String> {
    let body = html! {
        body.center {
            div.card.narrow {
                h2 { (title) }
                p { (msg) }
                p { a href="/fleet" { "Back to the fleet" } }
            }
        }
    };
    Html(document(title, body).into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let page = message_page("<b>t</b>", "<script>alert('x')</script>\"&").0;
        assert!(
            page.contains("&lt;script&gt;alert('x')&lt;/script&gt;&quot;&amp;"),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains("<title>&lt;b&gt;t&lt;/b&gt; · Drover</title>"),
            "{page}"
        );
    }
}
