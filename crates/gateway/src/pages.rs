//! Pages holdfast answers with itself: small, self-contained HTML in the site's language
//! (de, en, fr, it; other languages fall back to en). They never show internal detail.

use http::StatusCode;

struct Texts {
    unavailable_title: &'static str,
    unavailable_body: &'static str,
    order_not_placed: &'static str,
    /// An origin answered an order with an error: it may or may not have been placed.
    order_check: &'static str,
    bad_request: &'static str,
    too_large: &'static str,
    retry: &'static str,
    busy: &'static str,
    too_many: &'static str,
    blocked: &'static str,
    too_slow: &'static str,
    checking: &'static str,
    need_js: &'static str,
}

const EN: Texts = Texts {
    unavailable_title: "We'll be right back",
    unavailable_body: "The shop is briefly unavailable. Please try again in a moment.",
    order_not_placed: "Your order was NOT placed. Nothing has been charged. Please try again in a moment.",
    order_check: "Your order may not have gone through. Please check your orders before you try again.",
    bad_request: "The request could not be understood.",
    too_large: "The request is too large.",
    retry: "Try again",
    busy: "The shop is very busy right now. Please try again in a few seconds.",
    too_many: "Too many requests from your network. Please wait a moment.",
    blocked: "Requests from your network are blocked for a while.",
    too_slow: "The request arrived too slowly.",
    checking: "Checking your browser before you enter the shop. This takes a moment.",
    need_js: "Please enable JavaScript and reload this page.",
};
const DE: Texts = Texts {
    unavailable_title: "Wir sind gleich wieder da",
    unavailable_body: "Der Shop ist kurzzeitig nicht erreichbar. Bitte versuchen Sie es in einem Moment erneut.",
    order_not_placed:
        "Ihre Bestellung wurde NICHT aufgegeben. Es wurde nichts berechnet. Bitte versuchen Sie es gleich noch einmal.",
    order_check: "Ihre Bestellung ist möglicherweise nicht eingegangen. Bitte prüfen Sie Ihre Bestellungen, bevor Sie es erneut versuchen.",
    bad_request: "Die Anfrage konnte nicht verstanden werden.",
    too_large: "Die Anfrage ist zu groß.",
    retry: "Erneut versuchen",
    busy: "Im Shop ist gerade sehr viel los. Bitte versuchen Sie es in ein paar Sekunden erneut.",
    too_many: "Zu viele Anfragen aus Ihrem Netz. Bitte warten Sie einen Moment.",
    blocked: "Anfragen aus Ihrem Netz sind vorübergehend gesperrt.",
    too_slow: "Die Anfrage kam zu langsam an.",
    checking: "Wir prüfen Ihren Browser, bevor Sie den Shop betreten. Das dauert einen Moment.",
    need_js: "Bitte aktivieren Sie JavaScript und laden Sie die Seite neu.",
};
const FR: Texts = Texts {
    unavailable_title: "Nous revenons tout de suite",
    unavailable_body: "La boutique est momentanément indisponible. Veuillez réessayer dans un instant.",
    order_not_placed: "Votre commande n'a PAS été passée. Rien n'a été débité. Veuillez réessayer dans un instant.",
    order_check: "Votre commande n'a peut-être pas abouti. Veuillez vérifier vos commandes avant de réessayer.",
    bad_request: "La requête n'a pas pu être comprise.",
    too_large: "La requête est trop volumineuse.",
    retry: "Réessayer",
    busy: "La boutique est très sollicitée en ce moment. Veuillez réessayer dans quelques secondes.",
    too_many: "Trop de requêtes depuis votre réseau. Veuillez patienter un instant.",
    blocked: "Les requêtes de votre réseau sont bloquées pour un moment.",
    too_slow: "La requête est arrivée trop lentement.",
    checking: "Nous vérifions votre navigateur avant l'entrée dans la boutique. Cela prend un instant.",
    need_js: "Veuillez activer JavaScript et recharger la page.",
};
const IT: Texts = Texts {
    unavailable_title: "Torniamo subito",
    unavailable_body: "Il negozio è momentaneamente non disponibile. Riprova tra un momento.",
    order_not_placed: "Il tuo ordine NON è stato effettuato. Non è stato addebitato nulla. Riprova tra un momento.",
    order_check: "Il tuo ordine potrebbe non essere andato a buon fine. Controlla i tuoi ordini prima di riprovare.",
    bad_request: "La richiesta non è stata compresa.",
    too_large: "La richiesta è troppo grande.",
    retry: "Riprova",
    busy: "Il negozio è molto affollato in questo momento. Riprova tra qualche secondo.",
    too_many: "Troppe richieste dalla tua rete. Attendi un momento.",
    blocked: "Le richieste dalla tua rete sono bloccate per un po'.",
    too_slow: "La richiesta è arrivata troppo lentamente.",
    checking: "Stiamo verificando il tuo browser prima dell'ingresso nel negozio. Ci vuole un momento.",
    need_js: "Attiva JavaScript e ricarica la pagina.",
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
pub(crate) enum Problem {
    /// No origin could answer: the maintenance page (503).
    Unavailable,
    BadRequest,
    TooLarge,
    /// Shed by adaptive admission (503).
    Busy,
    /// Over a rate limit (429).
    TooMany,
    /// From a blocked address or prefix (403).
    Blocked,
    /// A request body slower than the minimum upload rate (408).
    TooSlow,
    /// An origin answered with this error status (500, 502, 503, 504): the maintenance
    /// page with that status.
    OriginError(StatusCode),
}

/// A page for a site. `unsafe_method` adds that an order (or other change) was not made.
pub(crate) fn site_page(language: &str, site: &str, problem: Problem, unsafe_method: bool) -> (StatusCode, String) {
    let t = texts(language);
    let lang = escape(language);
    let site = escape(site);
    let (status, title, body) = match problem {
        Problem::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, t.unavailable_title, t.unavailable_body),
        Problem::BadRequest => (StatusCode::BAD_REQUEST, t.bad_request, ""),
        Problem::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, t.too_large, ""),
        Problem::Busy => (StatusCode::SERVICE_UNAVAILABLE, t.busy, ""),
        Problem::TooMany => (StatusCode::TOO_MANY_REQUESTS, t.too_many, ""),
        Problem::Blocked => (StatusCode::FORBIDDEN, t.blocked, ""),
        Problem::TooSlow => (StatusCode::REQUEST_TIMEOUT, t.too_slow, ""),
        Problem::OriginError(status) => (status, t.unavailable_title, t.unavailable_body),
    };
    let order = match problem {
        _ if !unsafe_method => String::new(),
        Problem::Unavailable | Problem::Busy | Problem::TooMany => {
            format!("<p class=\"order\"><strong>{}</strong></p>", t.order_not_placed)
        }
        Problem::OriginError(_) => format!("<p class=\"order\"><strong>{}</strong></p>", t.order_check),
        _ => String::new(),
    };
    let retry = if matches!(problem, Problem::Unavailable | Problem::Busy | Problem::OriginError(_)) {
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

/// The proof-of-work interstitial: the script finds a nonce such that SHA-256 of
/// `token:nonce` starts with `difficulty` zero bits, then asks for `verify` with it, which
/// sets the clearance cookie and sends the browser back to `back`. SHA-256 is written out in
/// the script because WebCrypto is only available to pages served over HTTPS.
pub(crate) fn challenge_page(
    language: &str,
    site: &str,
    token: &str,
    difficulty: u8,
    verify: &str,
    back: &str,
) -> String {
    let t = texts(language);
    let lang = escape(language);
    let site = escape(site);
    // JSON strings are valid JavaScript literals; "</" is escaped so that no value can
    // close the script element.
    let js = |s: &str| serde_json::to_string(s).unwrap_or_default().replace("</", "<\\/");
    let (token, verify, back) = (js(token), js(verify), js(back));
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<meta name=\"robots\" content=\"noindex\"><title>{site}</title><style>body{{font-family:sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}}</style>\
</head><body><h1>{site}</h1><p>{checking}</p><noscript><p>{need_js}</p></noscript><script>\n{POW_JS}\nsolve({token},{difficulty},{verify},{back});\n</script></body></html>\n",
        checking = t.checking,
        need_js = t.need_js,
    )
}

const POW_JS: &str = r#"function sha256(s){var K=[0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2];
var H=[0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19],w=new Array(64),b=[],i,j;
for(i=0;i<s.length;i++)b.push(s.charCodeAt(i)&255);var l=b.length*8;b.push(128);while(b.length%64!=56)b.push(0);
b.push(0,0,0,0,(l>>>24)&255,(l>>>16)&255,(l>>>8)&255,l&255);
for(j=0;j<b.length;j+=64){for(i=0;i<16;i++)w[i]=(b[j+4*i]<<24)|(b[j+4*i+1]<<16)|(b[j+4*i+2]<<8)|b[j+4*i+3];
for(i=16;i<64;i++){var x=w[i-15],y=w[i-2];w[i]=(w[i-16]+((x>>>7|x<<25)^(x>>>18|x<<14)^(x>>>3))+w[i-7]+((y>>>17|y<<15)^(y>>>19|y<<13)^(y>>>10)))|0;}
var a=H[0],B=H[1],c=H[2],d=H[3],e=H[4],f=H[5],g=H[6],h=H[7];
for(i=0;i<64;i++){var t1=(h+((e>>>6|e<<26)^(e>>>11|e<<21)^(e>>>25|e<<7))+((e&f)^(~e&g))+K[i]+w[i])|0,t2=(((a>>>2|a<<30)^(a>>>13|a<<19)^(a>>>22|a<<10))+((a&B)^(a&c)^(B&c)))|0;
h=g;g=f;f=e;e=(d+t1)|0;d=c;c=B;B=a;a=(t1+t2)|0;}
H[0]=(H[0]+a)|0;H[1]=(H[1]+B)|0;H[2]=(H[2]+c)|0;H[3]=(H[3]+d)|0;H[4]=(H[4]+e)|0;H[5]=(H[5]+f)|0;H[6]=(H[6]+g)|0;H[7]=(H[7]+h)|0;}
return H;}
function zeros(H){for(var n=0,i=0;i<8;i++){if(H[i]!==0)return n+Math.clz32(H[i]);n+=32;}return n;}
function solve(t,d,v,r){var n=0;(function step(){for(var k=0;k<5000;k++,n++){if(zeros(sha256(t+":"+n))>=d){location.replace(v+"?t="+encodeURIComponent(t)+"&n="+n+"&r="+encodeURIComponent(r));return;}}setTimeout(step,0);})();}"#;

/// A page for requests that match no site (unknown host, or no host at all).
pub(crate) fn no_site_page(status: StatusCode) -> String {
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
