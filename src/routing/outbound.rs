//! Outbound routes (*rotas de saída*): which trunks carry a number an
//! extension dials (or the bridge forwards to), and what they are sent.
//! The first route by priority (then id) with a matching pattern decides;
//! a route that does not allow the extension refuses the call rather than
//! letting a lower route carry it (an admin who restricts a pattern means
//! it).

use crate::domain::{Id, OutboundRoute};

use super::DialPattern;

/// What to dial: the number after `strip` and `prepend`, and the trunks
/// to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundDial {
    pub route_id: Id,
    pub route: String,
    pub number: String,
    pub trunk_ids: Vec<Id>,
}

/// Why no trunk carries the number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteRefusal {
    /// No route's pattern matches (SIP 404).
    #[error("no outbound route matches")]
    NoRoute,
    /// The matching route does not allow this extension (SIP 403).
    #[error("outbound route {0:?} does not allow this extension")]
    NotAllowed(String),
    /// The matching route has no trunk (SIP 503).
    #[error("outbound route {0:?} has no trunk")]
    NoTrunk(String),
}

/// The route for `number` dialled by extension `extension_id`. Follow-me
/// dials as the called extension: its routes are the ones its owner may
/// use, as a PBX applies the forwarding extension's permissions.
pub fn route_call(
    routes: &[OutboundRoute],
    extension_id: Option<Id>,
    number: &str,
) -> Result<OutboundDial, RouteRefusal> {
    choose(routes, Some(extension_id), number)
}

/// The route for a number the bridge itself forwards to (a department's
/// after-hours `{number}`): no extension dials it, and the admin who set
/// the number chose it, so `allowed_extension_ids` (which extensions may
/// dial out) does not apply; the first matching route by priority does.
pub fn route_forward(routes: &[OutboundRoute], number: &str) -> Result<OutboundDial, RouteRefusal> {
    choose(routes, None, number)
}

/// `caller`: `Some(extension)` when an extension's permission is checked,
/// `None` when none applies.
fn choose(
    routes: &[OutboundRoute],
    caller: Option<Option<Id>>,
    number: &str,
) -> Result<OutboundDial, RouteRefusal> {
    let mut ordered: Vec<&OutboundRoute> = routes.iter().collect();
    ordered.sort_by_key(|r| (r.priority, r.id));
    let route = ordered
        .into_iter()
        .find(|r| {
            r.patterns
                .iter()
                .filter_map(|p| DialPattern::parse(p).ok())
                .any(|p| p.matches(number))
        })
        .ok_or(RouteRefusal::NoRoute)?;
    if let Some(extension_id) = caller
        && !route.allowed_extension_ids.is_empty()
        && !extension_id.is_some_and(|e| route.allowed_extension_ids.contains(&e))
    {
        return Err(RouteRefusal::NotAllowed(route.name.clone()));
    }
    if route.trunk_ids.is_empty() {
        return Err(RouteRefusal::NoTrunk(route.name.clone()));
    }
    let strip = (route.strip as usize).min(number.len());
    let rest = number.get(strip..).unwrap_or_default();
    Ok(OutboundDial {
        route_id: route.id,
        route: route.name.clone(),
        number: format!("{}{rest}", route.prepend),
        trunk_ids: route.trunk_ids.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: Id, priority: i64, patterns: &[&str], trunks: &[Id]) -> OutboundRoute {
        OutboundRoute {
            id,
            name: format!("r{id}"),
            priority,
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            strip: 0,
            prepend: String::new(),
            trunk_ids: trunks.to_vec(),
            allowed_extension_ids: Vec::new(),
            created_at: crate::domain::fixtures::at(),
            updated_at: crate::domain::fixtures::at(),
        }
    }

    #[test]
    fn first_matching_route_by_priority_with_strip_and_prepend() {
        let mut mobile = route(1, 20, &["_0[6-9]XXXXXXXX"], &[1, 2]);
        mobile.strip = 1;
        mobile.prepend = "0041".into();
        let local = route(2, 10, &["_0[2-5]XXXXXXX", "_00."], &[2]);
        let routes = [mobile, local];
        let dial = route_call(&routes, Some(1), "0791234567").unwrap();
        assert_eq!(dial.number, "0041791234567");
        assert_eq!(dial.trunk_ids, vec![1, 2]);
        assert_eq!(route_call(&routes, None, "00351").unwrap().route_id, 2);
        assert_eq!(route_call(&routes, None, "12"), Err(RouteRefusal::NoRoute));
    }

    #[test]
    fn a_route_that_does_not_allow_the_extension_refuses() {
        let mut only_2 = route(1, 10, &["_X."], &[1]);
        only_2.allowed_extension_ids = vec![2];
        let anyone = route(2, 20, &["_X."], &[1]);
        let routes = [only_2, anyone];
        assert!(matches!(
            route_call(&routes, Some(1), "5511"),
            Err(RouteRefusal::NotAllowed(_))
        ));
        assert_eq!(route_call(&routes, Some(2), "5511").unwrap().route_id, 1);
    }

    #[test]
    fn a_forward_takes_the_first_matching_route_whatever_it_allows() {
        let mut only_2 = route(1, 10, &["_X."], &[1]);
        only_2.allowed_extension_ids = vec![2];
        let routes = [only_2, route(2, 20, &["_X."], &[1])];
        assert_eq!(route_forward(&routes, "5511").unwrap().route_id, 1);
        assert_eq!(route_forward(&routes, "*1"), Err(RouteRefusal::NoRoute));
    }

    #[test]
    fn strip_longer_than_the_number_leaves_the_prefix() {
        let mut r = route(1, 10, &["_X"], &[1]);
        r.strip = 5;
        r.prepend = "9".into();
        assert_eq!(route_call(&[r], None, "7").unwrap().number, "9");
    }
}
