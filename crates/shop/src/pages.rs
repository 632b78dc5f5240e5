//! The shop's HTML pages, CSS and product images.

use crate::catalog::{self, Category, Product};
use crate::orders::Order;
use crate::Shop;
use std::fmt::Write;

pub(crate) const CSS: &str =
    "body{font-family:sans-serif;margin:0;color:#222}header{background:#9d0208;color:#fff;padding:1em}\
header a{color:#fff}main{padding:1em;max-width:60em;margin:auto}.grid{display:flex;flex-wrap:wrap;gap:1em}\
.card{border:1px solid #ddd;padding:.5em;width:12em}footer{color:#777;font-size:.8em;padding:1em}\n";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn price(shop: &Shop, cents: u32) -> String {
    let (sym, before) = match (shop.config.language.as_str(), shop.config.site.as_str()) {
        (_, s) if s.ends_with("uk") => ("£", true),
        ("en", _) => ("$", true),
        _ => ("€", false),
    };
    let amount = format!("{}.{:02}", cents / 100, cents % 100);
    if before {
        format!("{sym}{amount}")
    } else {
        format!("{} {sym}", amount.replace('.', ","))
    }
}

fn layout(shop: &Shop, title: &str, body: &str) -> String {
    let t = shop.texts;
    let lang = escape(&shop.config.language);
    let site = escape(&shop.config.site);
    let mut nav = String::new();
    for c in catalog::CATEGORIES {
        let _ = write!(nav, " <a href=\"/c/{}\">{}</a>", c.slug, c.names[t.lang_index]);
    }
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{site} - {title}</title>\
<link rel=\"stylesheet\" href=\"/static/shop.css\"></head><body><header><a href=\"/\"><strong>{site}</strong></a>{nav} \
<a href=\"/cart\">{cart}</a><form action=\"/search\"><input name=\"q\"><button>{search}</button></form></header>\
<main>{body}</main><footer>{served} {dc}</footer></body></html>\n",
        title = escape(title),
        cart = t.cart,
        search = t.search,
        served = t.served_from,
        dc = escape(&shop.config.datacenter),
    )
}

fn card(shop: &Shop, p: &Product) -> String {
    let name = p.names[shop.texts.lang_index];
    format!(
        "<div class=\"card\"><a href=\"/p/{id}\"><img src=\"/img/{id}.svg\" alt=\"{name}\" width=\"120\" height=\"90\"><br>{name}</a><br>{price}</div>",
        id = p.id,
        price = price(shop, p.price_cents)
    )
}

pub(crate) fn home(shop: &Shop) -> String {
    let t = shop.texts;
    let mut body = format!("<h1>{}</h1><div class=\"grid\">", t.welcome);
    for p in catalog::PRODUCTS.iter().step_by(3) {
        body.push_str(&card(shop, p));
    }
    let _ = write!(body, "</div><h2>{}</h2><ul>", t.categories);
    for c in catalog::CATEGORIES {
        let _ = write!(body, "<li><a href=\"/c/{}\">{}</a></li>", c.slug, c.names[t.lang_index]);
    }
    body.push_str("</ul>");
    layout(shop, t.welcome, &body)
}

pub(crate) fn category(shop: &Shop, c: &Category) -> String {
    let name = c.names[shop.texts.lang_index];
    let mut body = format!("<h1>{name}</h1><div class=\"grid\">");
    for p in catalog::PRODUCTS.iter().filter(|p| p.category == c.slug) {
        body.push_str(&card(shop, p));
    }
    body.push_str("</div>");
    layout(shop, name, &body)
}

pub(crate) fn product(shop: &Shop, p: &Product) -> String {
    let t = shop.texts;
    let name = p.names[t.lang_index];
    let body = format!(
        "<h1>{name}</h1><img src=\"/img/{id}.svg\" alt=\"{name}\" width=\"320\" height=\"240\"><p>{price}</p>\
<form method=\"post\" action=\"/cart\"><input type=\"hidden\" name=\"id\" value=\"{id}\"><button>{add}</button></form>",
        id = p.id,
        price = price(shop, p.price_cents),
        add = t.add_to_cart
    );
    layout(shop, name, &body)
}

pub(crate) fn search(shop: &Shop, q: &str) -> String {
    let t = shop.texts;
    let needle = q.to_lowercase();
    let mut body = format!("<h1>{} \"{}\"</h1><div class=\"grid\">", t.results_for, escape(q));
    for p in catalog::PRODUCTS.iter().filter(|p| p.names[t.lang_index].to_lowercase().contains(&needle)) {
        body.push_str(&card(shop, p));
    }
    body.push_str("</div>");
    layout(shop, t.search, &body)
}

pub(crate) fn cart(shop: &Shop, items: &[usize]) -> String {
    let t = shop.texts;
    let mut body = format!("<h1>{}</h1>", t.cart);
    if items.is_empty() {
        body.push_str(&format!("<p>{}</p>", t.empty_cart));
    } else {
        body.push_str("<ul>");
        let mut total = 0;
        for p in items.iter().filter_map(|i| catalog::product(*i)) {
            total += p.price_cents;
            let _ = write!(body, "<li>{} - {}</li>", p.names[t.lang_index], price(shop, p.price_cents));
        }
        let _ = write!(
            body,
            "</ul><p><strong>{}</strong></p><form method=\"post\" action=\"/checkout\"><button>{}</button></form>",
            price(shop, total),
            t.checkout
        );
    }
    layout(shop, t.cart, &body)
}

pub(crate) fn order_placed(shop: &Shop, order: &Order, repeated: bool) -> String {
    let t = shop.texts;
    let msg = if repeated { t.order_repeated } else { t.order_placed };
    layout(shop, t.checkout, &format!("<h1>{msg}</h1><p class=\"order-id\">{}</p>", escape(&order.id)))
}

pub(crate) fn not_found(shop: &Shop) -> String {
    layout(shop, shop.texts.not_found, &format!("<h1>{}</h1>", shop.texts.not_found))
}

pub(crate) fn image(p: &Product) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"320\" height=\"240\" viewBox=\"0 0 320 240\">\
<rect width=\"320\" height=\"240\" fill=\"{}\"/><circle cx=\"160\" cy=\"120\" r=\"60\" fill=\"#fff\" opacity=\".3\"/>\
<text x=\"160\" y=\"130\" font-size=\"32\" text-anchor=\"middle\" fill=\"#fff\">#{}</text></svg>\n",
        p.colour, p.id
    )
}
