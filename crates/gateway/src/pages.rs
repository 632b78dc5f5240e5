//! Pages holdfast answers with itself: small, self-contained HTML in the site's language
//! (de, en, fr, it; other languages fall back to en). They never show internal detail.

use http::StatusCode;

struct Texts {
    unavailable_title: &'static str,
    unavailable_body: &'static str,
    order_not_placed: &'static str,
    bad_request: &'static str,
    too_large: &'static str,
    retry: &'static str,
}

const EN: Texts = Texts {
    unavailable_title: "We'll be right back",
    unavailable_body: "The shop is briefly unavailable. Please try again in a moment.",
    order_not_placed: "Your order was NOT placed. Nothing has been charged. Please try again in a moment.",
    bad_request: "The request could not be understood.",
    too_large: "The request is too large.",
    retry: "Try again",
};
const DE: Texts = Texts {
    unavailable_title: "Wir sind gleich wieder da",
    unavailable_body: "Der Shop ist kurzzeitig nicht erreichbar. Bitte versuchen Sie es in einem Moment erneut.",
    order_not_placed:
        "Ihre Bestellung wurde NICHT aufgegeben. Es wurde nichts berechnet. Bitte versuchen Sie es gleich noch einmal.",
    bad_request: "Die Anfrage konnte nicht verstanden werden.",
    too_large: "Die Anfrage ist zu groß.",
    retry: "Erneut versuchen",
};
const FR: Texts = Texts {
    unavailable_title: "Nous revenons tout de suite",
    unavailable_body: "La boutique est momentanément indisponible. Veuillez réessayer dans un instant.",
    order_not_placed: "Votre commande n'a PAS été passée. Rien n'a été débité. Veuillez réessayer dans un instant.",
    bad_request: "La requête n'a pas pu être comprise.",
    too_large: "La requête est trop volumineuse.",
    retry: "Réessayer",
};
const IT: Texts = Texts {
    unavailable_title: "Torniamo subito",
    unavailable_body: "Il negozio è momentaneamente non disponibile. Riprova tra un momento.",
    order_not_placed: "Il tuo ordine NON è stato effettuato. Non è stato addebitato nulla. Riprova tra un momento.",
    bad_request: "La richiesta non è stata compresa.",
    too_large: "La richiesta è troppo grande.",
    retry: "Riprova",
};

fn texts(language: &str) -> &'static Texts {
    match language.get(..2).unwrap_or("") {
        "de" => &DE,
        "fr" => &FR,
        "it" => &IT,
        _ => &EN,
    }
}

/// What went wrong, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// No origin could answer: the maintenance page (503).
    Unavailable,
    BadRequest,
    TooLarge,
}

/// A page for a site. `unsafe_method` adds that an order (or other change) was not made.
pub fn site_page(language: &str, site: &str, problem: Problem, unsafe_method: bool) -> (StatusCode, String) {
    let t = texts(language);
    let lang = escape(language);
    let site = escape(site);
    let (status, title, body) = match problem {
        Problem::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, t.unavailable_title, t.unavailable_body),
        Problem::BadRequest => (StatusCode::BAD_REQUEST, t.bad_request, ""),
        Problem::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, t.too_large, ""),
    };
    let order = if unsafe_method && matches!(problem, Problem::Unavailable) {
        format!("<p class=\"order\"><strong>{}</strong></p>", t.order_not_placed)
    } else {
        String::new()
    };
    let retry = if matches!(problem, Problem::Unavailable) {
        format!("<p><a href=\"\">{}</a></p>", t.retry)
    } else {
        String::new()
    };
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>{site} - {title}</title><style>body{{font-family:sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}}\
.order{{color:#a00}}</style></head><body><h1>{site}</h1><h2>{title}</h2><p>{body}</p>{order}{retry}</body></html>\n"
    );
    (status, html)
}

/// A page for requests that match no site (unknown host, or no host at all).
pub fn no_site_page(status: StatusCode) -> String {
    let msg = match status {
        StatusCode::MISDIRECTED_REQUEST => "This connection does not serve that host name.",
        StatusCode::BAD_REQUEST => "The request has no valid Host.",
        _ => "No site is served at this host name.",
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} {}</title></head><body><p>{msg}</p></body></html>\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
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

    #[test]
    fn localized_and_order_notice() {
        let (s, html) = site_page("de", "shop-de", Problem::Unavailable, true);
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(html.contains("lang=\"de\""));
        assert!(html.contains("Wir sind gleich wieder da"));
        assert!(html.contains("NICHT aufgegeben"));
        let (_, html) = site_page("pt", "<x>", Problem::Unavailable, false);
        assert!(html.contains("We'll be right back"));
        assert!(html.contains("&lt;x&gt;"));
        assert!(!html.contains("NOT placed"));
    }
}
