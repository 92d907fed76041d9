//! Redis Sentinel: `redis+sentinel://[user:password@]host1:26379,host2:26379/<master-name>[/<db>]`
//! (`rediss+sentinel://` for TLS). Every new connection asks the sentinels, in order, which
//! server is the primary of `<master-name>` and checks with `ROLE` that it says so itself; the
//! store drops its connections on a transport failure or a `READONLY` reply (a primary demoted to
//! a replica), so after a failover the next connection reaches the new primary without the store
//! being reopened. Each step is bounded by the store's timeout (redis-rs's own Sentinel client
//! has none on its lookups, and caches the primary per client). The credentials and the
//! database are the primary's; the sentinels are asked without them.

use crate::error::{Error, Result};

/// The default port of a sentinel.
const SENTINEL_PORT: u16 = 26379;

/// A parsed `redis+sentinel://` URL.
#[derive(Debug, Clone)]
pub(crate) struct SentinelUrl {
    /// Each sentinel's own URL (`redis://host:port`, or `rediss://`), asked in order.
    pub(crate) sentinels: Vec<String>,
    /// The name the sentinels monitor the primary by.
    pub(crate) master: String,
    /// `redis` or `rediss`: for the sentinels and the primary alike.
    scheme: &'static str,
    /// `user:password@` of the primary, or empty.
    userinfo: String,
    /// `/<db>` of the primary, or empty.
    db: String,
}

impl SentinelUrl {
    /// The sentinel URL `url` (without its `?query`), or `None` for another scheme.
    pub(crate) fn parse(url: &str) -> Result<Option<Self>> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            ("redis", rest)
        } else if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
            ("rediss", rest)
        } else {
            return Ok(None);
        };
        let bad = |why: &str| Error::invalid_argument(format!("bad redis+sentinel URL {url:?}: {why}"));
        let (authority, path) =
            rest.split_once('/').ok_or_else(|| bad("it names no master (…/<master-name>)"))?;
        let (userinfo, hosts) = split_userinfo(authority);
        let sentinels = addresses(hosts, SENTINEL_PORT, &format!("{scheme}://"), "sentinel", &bad)?
            .into_iter()
            .map(|address| format!("{scheme}://{address}"))
            .collect();
        let (master, db) = match path.split_once('/') {
            Some((master, db)) => {
                db.parse::<u16>().map_err(|_| bad(&format!("database {db:?} is not a number")))?;
                (master, format!("/{db}"))
            }
            None => (path, String::new()),
        };
        if master.is_empty() {
            return Err(bad("it names no master (…/<master-name>)"));
        }
        Ok(Some(Self { sentinels, master: master.to_owned(), scheme, userinfo, db }))
    }

    /// The URL of the primary a sentinel named, with this URL's scheme, credentials and database.
    pub(crate) fn primary_url(&self, host: &str, port: u16) -> String {
        let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
        format!("{}://{}{host}:{port}{}", self.scheme, self.userinfo, self.db)
    }
}

/// `user:password@` (or empty) and the hosts of a URL's authority.
pub(crate) fn split_userinfo(authority: &str) -> (String, &str) {
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), authority),
    }
}

/// The comma-separated `hosts` as `host:port` addresses, `default_port` where a host gives none
/// (IPv6 addresses are bracketed), each checked as the URL `{prefix}{address}`; `what` names a
/// host in the errors `bad` makes.
pub(crate) fn addresses(
    hosts: &str,
    default_port: u16,
    prefix: &str,
    what: &str,
    bad: &dyn Fn(&str) -> Error,
) -> Result<Vec<String>> {
    use redis::IntoConnectionInfo as _;
    hosts
        .split(',')
        .map(|host| {
            if host.is_empty() {
                return Err(bad(&format!("an empty {what} address")));
            }
            let has_port = host.rsplit_once(':').is_some_and(|(_, port)| !port.contains(']'));
            let address = if has_port { host.to_owned() } else { format!("{host}:{default_port}") };
            format!("{prefix}{address}")
                .as_str()
                .into_connection_info()
                .map_err(|e| bad(&format!("{what} {host:?}: {e}")))?;
            Ok(address)
        })
        .collect()
}

/// A sentinel's answer to `SENTINEL GET-MASTER-ADDR-BY-NAME`: the primary's host and port, or
/// `None` when it monitors no master of that name.
pub(crate) fn primary_address(reply: &redis::Value) -> Result<Option<(String, u16)>> {
    use redis::Value as V;
    let text = |value: &V| match value {
        V::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        V::SimpleString(text) => Some(text.clone()),
        _ => None,
    };
    match reply {
        V::Nil => Ok(None),
        V::Array(pair) if pair.len() == 2 => {
            let host = text(&pair[0]);
            let port = text(&pair[1]).and_then(|port| port.parse().ok());
            match (host, port) {
                (Some(host), Some(port)) => Ok(Some((host, port))),
                _ => Err(Error::corrupt(format!("redis sentinel: unreadable primary address {reply:?}"))),
            }
        }
        other => Err(Error::corrupt(format!("redis sentinel: unreadable primary address {other:?}"))),
    }
}

/// Whether `ROLE`'s reply says the server is a primary.
pub(crate) fn is_primary(reply: &redis::Value) -> bool {
    match reply {
        redis::Value::Array(items) => {
            matches!(
                items.first(),
                Some(redis::Value::BulkString(role)) if role == b"master"
            ) || matches!(items.first(), Some(redis::Value::SimpleString(role)) if role == "master")
        }
        _ => false,
    }
}

/// The error when no sentinel named a primary that answers as one.
pub(crate) fn no_primary(url: &SentinelUrl, last: Option<Error>) -> Error {
    let why = last.map_or_else(|| "no sentinel answered".to_owned(), |err| err.to_string());
    Error::unavailable(format!(
        "redis sentinel: no primary of {:?} found through {} sentinel(s) (a failover may be under way): {why}",
        url.master,
        url.sentinels.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_their_sentinels_master_credentials_and_database() {
        let url = SentinelUrl::parse("redis+sentinel://app:pw@10.0.0.1,10.0.0.2:26380/orders/3")
            .expect("valid")
            .expect("a sentinel URL");
        assert_eq!(url.sentinels, ["redis://10.0.0.1:26379", "redis://10.0.0.2:26380"]);
        assert_eq!(url.master, "orders");
        assert_eq!(url.primary_url("10.0.0.9", 6380), "redis://app:pw@10.0.0.9:6380/3");
        assert_eq!(url.primary_url("::1", 6379), "redis://app:pw@[::1]:6379/3");
        let tls = SentinelUrl::parse("rediss+sentinel://[::1]/m").expect("valid").expect("sentinel");
        assert_eq!(tls.sentinels, ["rediss://[::1]:26379"]);
        assert_eq!(tls.primary_url("h", 1), "rediss://h:1");
        assert!(SentinelUrl::parse("redis://h/0").expect("valid").is_none());
        for bad in
            ["redis+sentinel://h", "redis+sentinel://h/", "redis+sentinel://h,/m", "redis+sentinel://h/m/x"]
        {
            let err = SentinelUrl::parse(bad).expect_err(bad);
            assert_eq!(err.code(), "invalid_argument", "{bad}: {err}");
        }
    }
}
