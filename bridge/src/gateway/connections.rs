//! The gateway's count of open WebSocket connections, in total and per
//! client IP address: a connection takes a slot before its upgrade and
//! gives it back when its task ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Open WebSocket connections, in total and per client address.
#[derive(Default)]
pub(crate) struct Connections {
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was refused.
#[derive(Debug, PartialEq)]
pub(crate) enum Full {
    Total,
    Address,
}

/// A connection's place in [`Connections`], given back on drop.
pub(crate) struct Slot<'a> {
    connections: &'a Connections,
    address: IpAddr,
}

impl Connections {
    pub(crate) fn admit(&self, address: IpAddr, max_total: usize, max_per_address: usize) -> Result<Slot<'_>, Full> {
        let mut by_address = self.by_address.lock().unwrap();
        if by_address.values().sum::<usize>() >= max_total {
            return Err(Full::Total);
        }
        let count = by_address.entry(address).or_default();
        if *count >= max_per_address {
            return Err(Full::Address);
        }
        *count += 1;
        Ok(Slot { connections: self, address })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut by_address = self.connections.by_address.lock().unwrap();
        if let Some(count) = by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_in_total_and_per_address() {
        let connections = Connections::default();
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let first: Vec<_> = (0..2).map(|_| connections.admit(a, 3, 2).unwrap()).collect();
        assert_eq!(connections.admit(a, 3, 2).err(), Some(Full::Address));
        let other = connections.admit(b, 3, 2).unwrap();
        assert_eq!(connections.admit(c, 3, 2).err(), Some(Full::Total));
        drop(first);
        assert!(connections.admit(a, 3, 2).is_ok(), "slots come back on drop");
        drop(other);
        assert!(connections.by_address.lock().unwrap().is_empty(), "no address left behind");
    }
}
