//! The words of incidents: a plain English summary and timeline entries for the API and
//! the webhooks, and the public status page's sentences in each of its languages (German,
//! English, French, Italian). The public words name data centers and sites, never
//! origins, clients or prefixes.

use super::record::Incident;
use super::{Kind, Stage};

/// How a data center failed, in English.
fn mode_phrase(mode: Option<&str>) -> &'static str {
    match mode {
        Some("refused") => "connections were refused (its origins' processes were gone)",
        Some("blackhole") => "connections and requests got no answer (a black hole: its network or hardware)",
        Some("resets") => "connections were reset",
        Some("errors") => "its origins answered with errors",
        Some("slow") => "its answers came seconds late",
        Some("tls") => "TLS with it failed",
        _ => "it could not be reached",
    }
}

/// A data center's TLS failure in `lang` (de, fr, it; else English): what its
/// certificate or handshake said.
fn tls_reason(lang: &str, tls: Option<&crate::upstream::tls::TlsFailure>) -> String {
    // Per language: expired at {when}, expired, not yet valid, another name, unknown
    // issuer, refused, any other TLS failure.
    let words: [&str; 7] = match lang {
        "de" => [
            "sein Zertifikat ist am {when} abgelaufen",
            "sein Zertifikat ist abgelaufen",
            "sein Zertifikat ist noch nicht gültig",
            "sein Zertifikat lautet auf einen anderen Namen",
            "sein Zertifikat stammt von einem unbekannten Aussteller",
            "der TLS-Verbindungsaufbau wurde abgelehnt",
            "TLS-Fehler beim Verbindungsaufbau",
        ],
        "fr" => [
            "son certificat a expiré le {when}",
            "son certificat a expiré",
            "son certificat n'est pas encore valide",
            "son certificat porte un autre nom",
            "son certificat vient d'un émetteur inconnu",
            "la négociation TLS a été refusée",
            "erreur TLS à la connexion",
        ],
        "it" => [
            "il suo certificato è scaduto il {when}",
            "il suo certificato è scaduto",
            "il suo certificato non è ancora valido",
            "il suo certificato è intestato a un altro nome",
            "il suo certificato proviene da un emittente sconosciuto",
            "l'handshake TLS è stato rifiutato",
            "errore TLS alla connessione",
        ],
        _ => [
            "its certificate expired at {when}",
            "its certificate expired",
            "its certificate is not valid yet",
            "its certificate names another host",
            "its certificate comes from an unknown issuer",
            "its TLS handshake was refused",
            "TLS with it failed",
        ],
    };
    let when = tls.and_then(|t| t.not_after).map(|ms| {
        let t = crate::util::rfc3339_seconds(ms);
        // "2026-12-02T19:00:00Z" as "2026-12-02 19:00 UTC"
        format!("{} {} UTC", t.get(..10).unwrap_or(""), t.get(11..16).unwrap_or(""))
    });
    match (tls.map_or("", |t| t.reason.as_str()), when) {
        ("expired", Some(w)) => words[0].replace("{when}", &w),
        ("expired", None) => words[1].into(),
        ("not_yet_valid", _) => words[2].into(),
        ("name_mismatch", _) => words[3].into(),
        ("unknown_issuer", _) => words[4].into(),
        ("refused", _) => words[5].into(),
        _ => words[6].into(),
    }
}

/// How a data center failed, in English, with what TLS said when that was the way.
fn how_it_failed(f: &super::Facts) -> String {
    match f.mode.as_deref() {
        Some("tls") => tls_reason("en", f.tls.as_ref()),
        mode => mode_phrase(mode).to_string(),
    }
}

fn list(items: &[String]) -> String {
    match items {
        [] => "none".into(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".into();
    }
    let p = part as f64 * 100.0 / whole as f64;
    if p > 0.0 && p < 0.1 {
        "under 0.1%".into()
    } else {
        format!("{p:.1}%")
    }
}

/// One plain English sentence (or two) saying what happened; `related`: the kinds of the
/// incidents open beside it on the same sites.
pub(crate) fn summary(i: &Incident, related: &[Kind]) -> String {
    let f = &i.facts;
    let sites = list(&i.sites);
    match i.kind {
        Kind::DatacenterFailure => {
            let dc = i.datacenters.first().cloned().unwrap_or_default();
            let moved = if !f.moved_to.is_empty() {
                format!("; their traffic moved to {}", list(&f.moved_to))
            } else if i.impact.failed > 0 {
                "; no other data center took over".to_string()
            } else {
                String::new()
            };
            let routes = if f.routes.is_empty() { String::new() } else { format!(" (among them {})", list(&f.routes)) };
            let mut s = format!("Data center {dc} stopped serving {sites}{routes}: {}{moved}.", how_it_failed(f));
            if related.contains(&Kind::Flood) {
                s.push_str(" The errors shoppers saw meanwhile come from this failure, not from the flood.");
            }
            s
        }
        Kind::OriginFailure => {
            let dc = i.datacenters.first().cloned().unwrap_or_default();
            let n = f.origins.len().max(1);
            let origins = if n == 1 { "One origin".to_string() } else { format!("{n} origins") };
            if f.routes.is_empty() {
                format!("{origins} of data center {dc} failed; {dc} kept serving {sites} with its other origins.")
            } else {
                format!("{origins} of {} in data center {dc} failed; {dc} kept serving {sites}.", list(&f.routes))
            }
        }
        Kind::Flood => {
            let m = &i.impact;
            let flood = m.flood_blocked + m.flood_leaked;
            let mut s = headline(i);
            if flood > 0 {
                s.pop(); // the full stop
                s.push_str(&format!(
                    "; holdfast absorbed it: {} of its requests were stopped by the shield, {} reached the origins.",
                    pct(m.flood_blocked, flood),
                    pct(m.flood_leaked, flood),
                ));
            }
            if related.contains(&Kind::DatacenterFailure) {
                s.push_str(" A data-center failure at the same time is a separate incident.");
            }
            s
        }
        Kind::FlashCrowd => {
            let peak = f.peak_rps.unwrap_or(0.0);
            let usual = f.usual_rps.unwrap_or(0.0).max(0.1);
            format!(
                "{sites} had {:.0} times its usual shoppers ({peak:.0} requests per second, usually {usual:.0}): \
                 real shoppers, served as such, not an attack.",
                peak / usual
            )
        }
        Kind::Overload => {
            let cause = match f.cause.as_deref() {
                Some("flash_crowd") => " by a rush of shoppers",
                Some("flood") => " during a flood",
                Some("failover") => " after a failover moved traffic onto fewer origins",
                _ => "",
            };
            let m = &i.impact;
            format!(
                "The origins of {sites} were saturated{cause}; checkouts and returning shoppers went first: \
                 {} of {} checkouts placed, {} requests shed or refused.",
                m.checkouts_placed, m.checkouts_attempted, m.refused_or_shed
            )
        }
    }
}

/// A flood in one sentence, without its impact (not known when it is named).
fn headline(i: &Incident) -> String {
    let f = &i.facts;
    let signature = f.signature.as_deref().map(|s| format!(" ({s})")).unwrap_or_default();
    format!(
        "A flood of up to {:.0} requests and connection attempts per second from about {} addresses{signature} hit {}.",
        f.peak_rps.unwrap_or(0.0),
        f.sources.unwrap_or(0),
        list(&i.sites)
    )
}

/// The first timeline entry: what was seen (without an impact not counted yet).
pub(crate) fn opened(i: &Incident) -> String {
    let how = match i.stage {
        Stage::Investigating => "Investigating",
        _ => "Identified",
    };
    let what = if i.kind == Kind::Flood { headline(i) } else { i.summary.clone() };
    format!("{how}: {what}")
}

pub(crate) fn cleared(i: &Incident) -> String {
    match i.kind {
        Kind::DatacenterFailure => format!(
            "{} answers again; traffic returns to it gradually (slow start). Monitoring.",
            i.datacenters.first().map_or("The data center", String::as_str)
        ),
        Kind::Flood => "The flood has stopped. Monitoring.".into(),
        Kind::FlashCrowd => "The surge is over. Monitoring.".into(),
        Kind::Overload => "The origins keep up again. Monitoring.".into(),
        Kind::OriginFailure => "The origins are back. Monitoring.".into(),
    }
}

pub(crate) fn came_back(_: &Incident) -> String {
    "It came back.".into()
}

pub(crate) fn mode_changed(_: &Incident, mode: &str) -> String {
    format!("More evidence: {}.", mode_phrase(Some(mode)))
}

pub(crate) fn resolved(i: &Incident) -> String {
    let m = &i.impact;
    format!(
        "Resolved. {} requests while it lasted: {} served as usual, {} by another data center, {} from the cache, \
         {} failed.",
        m.requests, m.served, m.served_by_other_datacenter, m.served_stale, m.failed
    )
}

/// The status page's languages.
pub(crate) const LANGUAGES: [&str; 4] = ["de", "en", "fr", "it"];

/// The status page's fixed words, in `lang` (English for others).
pub(crate) struct Words {
    pub(crate) title_suffix: &'static str,
    pub(crate) operational: &'static str,
    pub(crate) degraded: &'static str,
    pub(crate) partial_outage: &'static str,
    pub(crate) backup_datacenter: &'static str,
    pub(crate) cached_pages: &'static str,
    pub(crate) attack_mitigated: &'static str,
    pub(crate) down: &'static str,
    pub(crate) all_good: &'static str,
    pub(crate) current: &'static str,
    pub(crate) history: &'static str,
    pub(crate) no_incidents: &'static str,
    pub(crate) started: &'static str,
    pub(crate) resolved: &'static str,
    pub(crate) ongoing: &'static str,
    pub(crate) updated: &'static str,
    pub(crate) feed: &'static str,
    /// Investigating, identified, monitoring, resolved.
    pub(crate) stages: [&'static str; 4],
}

impl Words {
    pub(crate) fn stage(&self, s: Stage) -> &'static str {
        self.stages[match s {
            Stage::Investigating => 0,
            Stage::Identified => 1,
            Stage::Monitoring => 2,
            Stage::Resolved => 3,
        }]
    }
}

pub(crate) fn words(lang: &str) -> &'static Words {
    match lang {
        "de" => &DE,
        "fr" => &FR,
        "it" => &IT,
        _ => &EN,
    }
}

static EN: Words = Words {
    title_suffix: "status",
    operational: "Operational",
    degraded: "Degraded performance",
    partial_outage: "Partial outage",
    backup_datacenter: "Serving from a backup data center",
    cached_pages: "Serving cached pages",
    attack_mitigated: "Under attack, mitigated",
    down: "Down",
    all_good: "All shops are operational.",
    current: "Now",
    history: "Past incidents",
    no_incidents: "No incidents.",
    started: "Started",
    resolved: "Resolved",
    ongoing: "Ongoing",
    updated: "Updated",
    feed: "Incident history feed (Atom)",
    stages: ["Investigating", "Identified", "Monitoring", "Resolved"],
};

static DE: Words = Words {
    title_suffix: "Status",
    operational: "In Betrieb",
    degraded: "Eingeschränkt",
    partial_outage: "Teilweise gestört",
    backup_datacenter: "Betrieb aus einem Ersatz-Rechenzentrum",
    cached_pages: "Auslieferung zwischengespeicherter Seiten",
    attack_mitigated: "Angriff, abgewehrt",
    down: "Ausgefallen",
    all_good: "Alle Shops sind in Betrieb.",
    current: "Jetzt",
    history: "Frühere Störungen",
    no_incidents: "Keine Störungen.",
    started: "Beginn",
    resolved: "Behoben",
    ongoing: "Andauernd",
    updated: "Aktualisiert",
    feed: "Verlauf der Störungen (Atom-Feed)",
    stages: ["Untersuchung", "Ursache erkannt", "Beobachtung", "Behoben"],
};

static FR: Words = Words {
    title_suffix: "état",
    operational: "Opérationnel",
    degraded: "Performances dégradées",
    partial_outage: "Panne partielle",
    backup_datacenter: "Servi depuis un centre de données de secours",
    cached_pages: "Pages servies depuis le cache",
    attack_mitigated: "Attaque en cours, contenue",
    down: "Hors service",
    all_good: "Toutes les boutiques sont opérationnelles.",
    current: "Maintenant",
    history: "Incidents passés",
    no_incidents: "Aucun incident.",
    started: "Début",
    resolved: "Résolu",
    ongoing: "En cours",
    updated: "Mis à jour",
    feed: "Historique des incidents (flux Atom)",
    stages: ["Analyse en cours", "Cause identifiée", "Surveillance", "Résolu"],
};

static IT: Words = Words {
    title_suffix: "stato",
    operational: "Operativo",
    degraded: "Prestazioni ridotte",
    partial_outage: "Interruzione parziale",
    backup_datacenter: "Servito da un data center di riserva",
    cached_pages: "Pagine servite dalla cache",
    attack_mitigated: "Sotto attacco, contenuto",
    down: "Non disponibile",
    all_good: "Tutti i negozi sono operativi.",
    current: "Adesso",
    history: "Incidenti passati",
    no_incidents: "Nessun incidente.",
    started: "Inizio",
    resolved: "Risolto",
    ongoing: "In corso",
    updated: "Aggiornato",
    feed: "Cronologia degli incidenti (feed Atom)",
    stages: ["In analisi", "Causa individuata", "Monitoraggio", "Risolto"],
};

/// What an incident did to shoppers, for the public status page in `lang`: the share of
/// requests served and the orders placed. None before any request was counted.
pub(crate) fn public_impact(i: &Incident, lang: &str) -> Option<String> {
    let m = &i.impact;
    if m.requests == 0 {
        return None;
    }
    let served = (m.requests - m.failed.min(m.requests)) as f64 * 100.0 / m.requests as f64;
    let share = if served < 100.0 { format!("{:.1}", (served * 10.0).floor() / 10.0) } else { "100".into() };
    let (placed, tried) = (m.checkouts_placed, m.checkouts_attempted);
    let decimal = share.replace('.', ",");
    let orders = |text: String| if tried == 0 { String::new() } else { text };
    Some(match lang {
        "de" => format!(
            "Für die Kundschaft: {decimal} % der Anfragen beantwortet{}.",
            orders(format!("; {placed} von {tried} Bestellungen angenommen"))
        ),
        "fr" => format!(
            "Pour les clients : {decimal} % des requêtes servies{}.",
            orders(format!(" ; {placed} commandes passées sur {tried}"))
        ),
        "it" => format!(
            "Per i clienti: {decimal}% delle richieste servite{}.",
            orders(format!("; {placed} ordini accettati su {tried}"))
        ),
        _ => format!(
            "For shoppers: {share}% of requests answered{}.",
            orders(format!("; {placed} of {tried} orders placed"))
        ),
    })
}

/// Where a fleet saw an incident from, for the public status page in `lang` (docs/fleet.md):
/// confirmed by n of N points of presence, or one point's own problem. None outside a fleet.
pub(crate) fn public_fleet(i: &Incident, lang: &str) -> Option<String> {
    if i.fleet_size < 2 || i.seen_from.is_empty() {
        return None;
    }
    let (n, of) = (i.seen_from.len(), i.fleet_size);
    let pops = i.seen_from.join(", ");
    if n == 1 && i.kind == super::Kind::DatacenterFailure {
        let dc = i.datacenters.first().map_or("", String::as_str);
        let others = of - 1;
        let one = others == 1;
        return Some(match lang {
            "de" if one => format!("Nur von {pops} aus gesehen: Der andere Standort erreicht {dc}. Ein Problem des Netzes von {pops}."),
            "de" => format!("Nur von {pops} aus gesehen: Die anderen {others} Standorte erreichen {dc}. Ein Problem des Netzes von {pops}."),
            "fr" if one => format!("Vu depuis {pops} seulement : l'autre point de présence atteint {dc}. Un problème du réseau de {pops}."),
            "fr" => format!("Vu depuis {pops} seulement : les {others} autres points de présence atteignent {dc}. Un problème du réseau de {pops}."),
            "it" if one => format!("Visto solo da {pops}: l'altro punto di presenza raggiunge {dc}. Un problema della rete di {pops}."),
            "it" => format!("Visto solo da {pops}: gli altri {others} punti di presenza raggiungono {dc}. Un problema della rete di {pops}."),
            _ if one => format!("Seen from {pops} only: the other point of presence reaches {dc}. A problem of {pops}'s own network."),
            _ => format!("Seen from {pops} only: the other {others} points of presence reach {dc}. A problem of {pops}'s own network."),
        });
    }
    Some(match lang {
        "de" => format!("Bestätigt von {n} von {of} Standorten ({pops})."),
        "fr" => format!("Confirmé par {n} points de présence sur {of} ({pops})."),
        "it" => format!("Confermato da {n} punti di presenza su {of} ({pops})."),
        _ => format!("Seen from {n} of {of} points of presence ({pops})."),
    })
}

/// The routes of a failure (`checkout of shop-de`) in `lang`, as a clause: ` (checkout von
/// shop-de)`; empty without routes.
fn route_words(lang: &str, routes: &[String]) -> String {
    if routes.is_empty() {
        return String::new();
    }
    let of = match lang {
        "de" => " von ",
        "fr" => " de ",
        "it" => " di ",
        _ => " of ",
    };
    let words: Vec<String> = routes
        .iter()
        .map(|r| match r.split_once(" of ") {
            Some((route, site)) => format!("{route}{of}{site}"),
            None => r.clone(),
        })
        .collect();
    format!(" ({})", words.join(", "))
}

/// An incident for the public status page, in `lang`: a title and a sentence. Data
/// centers and sites are named; origins, clients and prefixes never.
pub(crate) fn public(i: &Incident, lang: &str) -> (String, String) {
    let dc = i.datacenters.first().cloned().unwrap_or_default();
    let sites = i.sites.join(", ");
    let moved = i.facts.moved_to.join(", ");
    let peak = i.facts.peak_rps.unwrap_or(0.0);
    let m = &i.impact;
    // The share of its requests the shield stopped (none for a flood of slow connections).
    let flood_requests = m.flood_blocked + m.flood_leaked;
    let blocked = (flood_requests > 0).then(|| pct(m.flood_blocked, flood_requests));
    let mode = i.facts.mode.as_deref();
    let tls = tls_reason(lang, i.facts.tls.as_ref());
    let routes = route_words(lang, &i.facts.routes);
    match lang {
        "de" => match i.kind {
            Kind::DatacenterFailure => (
                format!("Ausfall des Rechenzentrums {dc}"),
                format!(
                    "Das Rechenzentrum {dc} hat {sites} nicht mehr bedient ({}). Die Shops wurden aus {} bedient.",
                    match mode {
                        Some("tls") => tls.as_str(),
                        Some("refused") => "Verbindungen abgewiesen",
                        Some("blackhole") => "keine Antwort: Netz oder Hardware",
                        Some("slow") => "Antworten mit Sekunden Verspätung",
                        Some("resets") => "Verbindungen abgebrochen",
                        Some("errors") => "Fehlerantworten",
                        _ => "nicht erreichbar",
                    },
                    if moved.is_empty() { "dem Cache" } else { moved.as_str() }
                ),
            ),
            Kind::OriginFailure => (
                format!("Einzelne Server in {dc} gestört{routes}"),
                format!("Einige Server im Rechenzentrum {dc} sind ausgefallen; {sites} lief mit den übrigen weiter."),
            ),
            Kind::Flood => (
                "Angriff abgewehrt".into(),
                format!(
                    "Eine Flut von bis zu {peak:.0} Anfragen und Verbindungsversuchen pro Sekunde traf {sites}{}.",
                    blocked.map(|b| format!("; {b} der Anfragen wurden abgewehrt")).unwrap_or_default()
                ),
            ),
            Kind::FlashCrowd => (
                "Großer Andrang".into(),
                format!("Sehr viele Kundinnen und Kunden auf {sites} gleichzeitig: echter Andrang, kein Angriff."),
            ),
            Kind::Overload => (
                "Hohe Auslastung".into(),
                format!("Die Server von {sites} waren ausgelastet; Bestellungen wurden bevorzugt bearbeitet."),
            ),
        },
        "fr" => match i.kind {
            Kind::DatacenterFailure => (
                format!("Panne du centre de données {dc}"),
                format!(
                    "Le centre de données {dc} ne servait plus {sites} ({}). Les boutiques ont été servies depuis {}.",
                    match mode {
                        Some("tls") => tls.as_str(),
                        Some("refused") => "connexions refusées",
                        Some("blackhole") => "aucune réponse : réseau ou matériel",
                        Some("slow") => "réponses avec des secondes de retard",
                        Some("resets") => "connexions interrompues",
                        Some("errors") => "réponses en erreur",
                        _ => "injoignable",
                    },
                    if moved.is_empty() { "le cache" } else { moved.as_str() }
                ),
            ),
            Kind::OriginFailure => (
                format!("Serveurs isolés en panne à {dc}{routes}"),
                format!("Quelques serveurs du centre de données {dc} sont tombés ; {sites} a continué avec les autres."),
            ),
            Kind::Flood => (
                "Attaque contenue".into(),
                format!(
                    "Un flot allant jusqu'à {peak:.0} requêtes et tentatives de connexion par seconde a visé {sites}{}.",
                    blocked.map(|b| format!(" ; {b} des requêtes ont été bloquées")).unwrap_or_default()
                ),
            ),
            Kind::FlashCrowd => (
                "Forte affluence".into(),
                format!("Une foule de clients sur {sites} en même temps : une vraie affluence, pas une attaque."),
            ),
            Kind::Overload => (
                "Forte charge".into(),
                format!("Les serveurs de {sites} étaient saturés ; les commandes sont passées en priorité."),
            ),
        },
        "it" => match i.kind {
            Kind::DatacenterFailure => (
                format!("Guasto del data center {dc}"),
                format!(
                    "Il data center {dc} ha smesso di servire {sites} ({}). I negozi sono stati serviti da {}.",
                    match mode {
                        Some("tls") => tls.as_str(),
                        Some("refused") => "connessioni rifiutate",
                        Some("blackhole") => "nessuna risposta: rete o hardware",
                        Some("slow") => "risposte con secondi di ritardo",
                        Some("resets") => "connessioni interrotte",
                        Some("errors") => "risposte di errore",
                        _ => "irraggiungibile",
                    },
                    if moved.is_empty() { "la cache" } else { moved.as_str() }
                ),
            ),
            Kind::OriginFailure => (
                format!("Singoli server guasti in {dc}{routes}"),
                format!("Alcuni server del data center {dc} si sono guastati; {sites} ha continuato con gli altri."),
            ),
            Kind::Flood => (
                "Attacco contenuto".into(),
                format!(
                    "Un'ondata fino a {peak:.0} richieste e tentativi di connessione al secondo ha colpito {sites}{}.",
                    blocked.map(|b| format!("; il {b} delle richieste è stato bloccato")).unwrap_or_default()
                ),
            ),
            Kind::FlashCrowd => (
                "Grande affluenza".into(),
                format!("Moltissimi clienti su {sites} allo stesso tempo: vera affluenza, non un attacco."),
            ),
            Kind::Overload => (
                "Carico elevato".into(),
                format!("I server di {sites} erano saturi; gli ordini hanno avuto la precedenza."),
            ),
        },
        _ => match i.kind {
            Kind::DatacenterFailure => (
                format!("Data center {dc} failure"),
                format!(
                    "Data center {dc} stopped serving {sites}: {}. The shops were served from {}.",
                    if mode == Some("tls") { tls.as_str() } else { mode_phrase(mode) },
                    if moved.is_empty() { "the cache" } else { moved.as_str() }
                ),
            ),
            Kind::OriginFailure => (
                format!("Some servers in {dc} failed{routes}"),
                format!("Some servers of data center {dc} failed; {sites} kept running on the others."),
            ),
            Kind::Flood => (
                "Attack mitigated".into(),
                format!(
                    "A flood of up to {peak:.0} requests and connection attempts per second hit {sites}{}.",
                    blocked.map(|b| format!("; {b} of its requests were blocked")).unwrap_or_default()
                ),
            ),
            Kind::FlashCrowd => (
                "Rush of shoppers".into(),
                format!("Many more shoppers than usual on {sites} at once: a real rush, not an attack."),
            ),
            Kind::Overload => (
                "High load".into(),
                format!("The servers of {sites} were saturated; orders were served first."),
            ),
        },
    }
}
