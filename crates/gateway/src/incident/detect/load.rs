//! The load rules: a flood (the shield's signals), a surge of shoppers (a flash crowd
//! against the site's usual rate), and overload (the origins saturated without failing).

use super::*;

impl Detector {
    pub(super) fn flood_rule(&mut self, obs: &Observation, out: &mut Vec<Finding>) {
        let f = &obs.flood;
        let slow = (f.slow_partial_heads >= SLOW_HEADS || f.slow_cut_per_second >= SLOW_CUTS)
            && f.slow_sources >= SLOW_SOURCES;
        if !f.active && !slow {
            if !self.is_watched(Kind::Flood, "*") {
                self.flood_peak = (0.0, 0);
            }
            return;
        }
        let rate = if f.active { f.suspicious_per_second + f.refused_per_second } else { 0.0 }
            + if slow { f.slow_per_second } else { 0.0 };
        self.flood_peak.0 = self.flood_peak.0.max(rate);
        self.flood_peak.1 =
            self.flood_peak.1.max(if f.active { f.addresses } else { 0 }.max(if slow { f.slow_sources } else { 0 }));
        let slow_signature = if f.slow_bodies {
            "request bodies trickled in, slower than the upload pace (slow POST)"
        } else {
            "request heads sent a line at a time and never finished (slowloris)"
        };
        let signature = if f.active { f.signature.clone() } else { Some(slow_signature.to_string()) };
        let mut sites: Vec<String> =
            obs.sites.iter().filter(|s| s.counts.suspicious[0] > 0).map(|s| s.name.clone()).collect();
        if sites.is_empty() {
            sites = obs.sites.iter().map(|s| s.name.clone()).collect();
        }
        let mut evidence = Vec::new();
        if f.active {
            evidence.push(Evidence {
                signal: "requests with a flood's signature".into(),
                value: f.suspicious_per_second,
                baseline: None,
                threshold: f.threshold,
                unit: "per_second".into(),
                detail: f.signature.clone().unwrap_or_default(),
            });
            evidence.push(Evidence {
                signal: "distinct addresses sending them".into(),
                value: f.addresses as f64,
                baseline: None,
                threshold: 1.0,
                unit: "count".into(),
                detail: format!("in {} prefixes; {} prefixes blocked", f.prefixes, f.blocked_prefixes),
            });
        }
        if slow {
            evidence.push(Evidence {
                signal: "request heads begun and not finished".into(),
                value: f.slow_partial_heads as f64,
                baseline: Some(0.0),
                threshold: SLOW_HEADS as f64,
                unit: "count".into(),
                detail: slow_signature.into(),
            });
            evidence.push(Evidence {
                signal: "connections cut off for a slow head or body".into(),
                value: f.slow_cut_per_second,
                baseline: Some(0.0),
                threshold: SLOW_CUTS,
                unit: "per_second".into(),
                detail: String::new(),
            });
            evidence.push(Evidence {
                signal: "distinct addresses of slow clients".into(),
                value: f.slow_sources as f64,
                baseline: None,
                threshold: SLOW_SOURCES as f64,
                unit: "count".into(),
                detail: String::new(),
            });
        }
        // Its share of the sites' requests and what it cost their origins, beside the
        // shoppers' (a flood inside a crowd is told apart by these).
        let (all, flood, at_origin) = obs.sites.iter().fold((0, 0, 0), |(a, f, o), s| {
            (a + s.counts.requests, f + s.counts.suspicious[0], o + s.counts.suspicious[2])
        });
        if flood > 0 {
            evidence.push(Evidence {
                signal: "share of the sites' requests that are the flood's".into(),
                value: flood as f64 / all.max(1) as f64,
                baseline: None,
                threshold: 0.0,
                unit: "ratio".into(),
                detail: format!(
                    "{} of its requests reached an origin ({:.0}% of them): the origins' cost of the flood",
                    at_origin,
                    at_origin as f64 * 100.0 / flood as f64
                ),
            });
        }
        if f.refused_per_second > 0.0 {
            evidence.push(Evidence {
                signal: "connections from blocked flood sources, refused on accept".into(),
                value: f.refused_per_second,
                baseline: None,
                threshold: 0.0,
                unit: "per_second".into(),
                detail: String::new(),
            });
        }
        if f.new_prefix_burst {
            evidence.push(Evidence {
                signal: "never-seen prefixes arriving in a burst".into(),
                value: 1.0,
                baseline: None,
                threshold: 1.0,
                unit: "count".into(),
                detail: String::new(),
            });
        }
        let over = if f.active {
            f.suspicious_per_second / f.threshold.max(1.0) - 1.0
        } else {
            f.slow_partial_heads as f64 / SLOW_HEADS as f64 - 1.0
        }
        .clamp(0.0, 1.0);
        out.push(Finding {
            key: Key { kind: Kind::Flood, scope: "*".into() },
            sites,
            datacenters: Vec::new(),
            facts: Facts {
                signature,
                peak_rps: Some(self.flood_peak.0),
                sources: Some(self.flood_peak.1),
                ..Facts::default()
            },
            evidence,
            confidence: 0.7 + 0.3 * over,
        });
    }

    pub(super) fn surge_rules(&mut self, obs: &Observation, out: &mut Vec<Finding>) {
        let t = self.tuning.clone();
        for s in &obs.sites {
            let rate = clean_rate(s, obs.secs);
            let Some(usual) = self.usual_rate.get(&s.name).copied() else { continue };
            let watched = self.is_watched(Kind::FlashCrowd, &s.name);
            // Once a surge is being watched it holds until the rate is back under the
            // threshold by a margin: a surge that wobbles is one surge.
            let factor = if watched { t.surge_factor * 0.8 } else { t.surge_factor };
            let surging = usual.samples >= t.warmup_ticks
                && rate >= factor * usual.value.max(1.0)
                && rate - usual.value >= t.surge_min_rps
                && (watched || rate >= PEAK_MARGIN * usual.peak);
            if !surging {
                if !watched {
                    self.surge_peak.remove(&s.name);
                }
                continue;
            }
            let peak = self.surge_peak.entry(s.name.clone()).or_default();
            *peak = peak.max(rate);
            let c = &s.counts;
            let returning = if c.requests == 0 { 0.0 } else { 1.0 - c.new_clients as f64 / c.requests as f64 };
            let suspicious = if c.requests == 0 { 0.0 } else { c.suspicious[0] as f64 / c.requests as f64 };
            let shoppers = c.requests.saturating_sub(c.suspicious[0]);
            let shoppers_at_origin = c.outcome(crate::incident::Outcome::Origin).saturating_sub(c.suspicious[2]);
            let ratio = rate / usual.value.max(1.0);
            out.push(Finding {
                key: Key { kind: Kind::FlashCrowd, scope: s.name.clone() },
                sites: vec![s.name.clone()],
                datacenters: Vec::new(),
                facts: Facts { peak_rps: Some(*peak), usual_rps: Some(usual.value), ..Facts::default() },
                evidence: vec![
                    Evidence {
                        signal: format!("requests per second to {} (flood traffic left out)", s.name),
                        value: rate,
                        baseline: Some(usual.value),
                        threshold: t.surge_factor * usual.value.max(1.0),
                        unit: "per_second".into(),
                        detail: format!("{ratio:.1} times the usual rate; recent peak {:.0}/s", usual.peak),
                    },
                    Evidence {
                        signal: "requests from clients seen before the surge".into(),
                        value: returning,
                        baseline: None,
                        threshold: 0.0,
                        unit: "ratio".into(),
                        detail: String::new(),
                    },
                    Evidence {
                        signal: "requests with a flood's signature".into(),
                        value: suspicious,
                        baseline: None,
                        threshold: 0.3,
                        unit: "ratio".into(),
                        detail: "requests that show a flood's signature, or come from sources that never fetch a \
                                 sub-resource and ask for a page of their own every time (no person browses so), \
                                 are the flood's and left out here"
                            .into(),
                    },
                    Evidence {
                        signal: "origin requests per shopper request".into(),
                        value: shoppers_at_origin as f64 / shoppers.max(1) as f64,
                        baseline: None,
                        threshold: 0.0,
                        unit: "ratio".into(),
                        detail: format!(
                            "{shoppers} shoppers' requests (browsers: pages with their assets, pages again), \
                             {shoppers_at_origin} of them answered by an origin, the rest by the cache"
                        ),
                    },
                ],
                confidence: (0.7 + 0.3 * ((ratio - t.surge_factor) / t.surge_factor).clamp(0.0, 1.0)).min(1.0),
            });
        }
    }

    pub(super) fn overload_rules(
        &mut self,
        obs: &Observation,
        failed_dcs: &[String],
        saturated_dcs: &[String],
        out: &mut Vec<Finding>,
    ) {
        for s in &obs.sites {
            let busy_dcs: Vec<&str> = s
                .pools
                .iter()
                .map(|p| p.datacenter.as_str())
                .filter(|d| saturated_dcs.iter().any(|s| s == d))
                .collect();
            if s.saturated.is_none() && s.waiting == 0 && busy_dcs.is_empty() {
                continue;
            }
            // A crowd named (open) is the cause; one only found this tick is, unless a flood
            // is on: then it may be the botnet's first seconds, and the flood is the cause.
            let crowd = Key { kind: Kind::FlashCrowd, scope: s.name.clone() };
            let crowd_open = self.tracks.get(&crowd).is_some_and(|t| t.open);
            let crowd_now = out.iter().any(|f| f.key == crowd);
            let cause = if crowd_open || (crowd_now && !obs.flood.active) {
                Some("flash_crowd")
            } else if obs.flood.active {
                Some("flood")
            } else if s.pools.iter().any(|p| failed_dcs.contains(&p.datacenter)) {
                Some("failover")
            } else {
                None
            };
            let shed = s.counts.outcome(crate::incident::Outcome::Shed);
            let reason = s.saturated.clone().unwrap_or_else(|| {
                if busy_dcs.is_empty() {
                    format!("{} requests waiting for a slot", s.waiting)
                } else {
                    format!("origins in {} answer busy (503) and their health checks time out", busy_dcs.join(", "))
                }
            });
            let busy: u64 = s.pools.iter().map(|p| p.busy).sum();
            let mut evidence = vec![
                Evidence {
                    signal: format!("admission's shed level for {}", s.name),
                    value: s.shed_level,
                    baseline: Some(0.0),
                    threshold: 0.0,
                    unit: "level".into(),
                    detail: reason.clone(),
                },
                Evidence {
                    signal: "requests waiting for a slot at the origins".into(),
                    value: f64::from(s.waiting),
                    baseline: Some(0.0),
                    threshold: 0.0,
                    unit: "count".into(),
                    detail: String::new(),
                },
                Evidence {
                    signal: "requests shed".into(),
                    value: shed as f64 / obs.secs.max(0.001),
                    baseline: Some(0.0),
                    threshold: 0.0,
                    unit: "per_second".into(),
                    detail: String::new(),
                },
            ];
            if busy > 0 || !busy_dcs.is_empty() {
                evidence.push(Evidence {
                    signal: "origin answers that said busy (503, 429)".into(),
                    value: busy as f64 / obs.secs.max(0.001),
                    baseline: Some(0.0),
                    threshold: 0.0,
                    unit: "per_second".into(),
                    detail: String::new(),
                });
            }
            out.push(Finding {
                key: Key { kind: Kind::Overload, scope: s.name.clone() },
                sites: vec![s.name.clone()],
                datacenters: busy_dcs.iter().map(|d| d.to_string()).collect(),
                facts: Facts { cause: cause.map(str::to_string), reason: Some(reason), ..Facts::default() },
                evidence,
                confidence: if s.saturated.is_some() || !busy_dcs.is_empty() { 0.9 } else { 0.7 },
            });
        }
    }
}
