//! A TCP forwarder a test can cut (and start again on the same port), to take the database or
//! Redis away from a running keygate and bring it back.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Forwards connections from its own port to `target` until cut.
pub struct CuttableProxy {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    /// Bumped by [`CuttableProxy::freeze_open`]: connections opened before stop forwarding.
    frozen: watch::Sender<u64>,
    /// Set by [`CuttableProxy::blackhole`]: new connections are accepted and then left silent.
    holes: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    pub async fn start(target: SocketAddr) -> Self {
        Self::start_at("127.0.0.1:0".parse().expect("address"), target).await
    }

    /// Forwards from `listen`: the address of a proxy that was cut, to restore what it forwarded.
    pub async fn start_at(listen: SocketAddr, target: SocketAddr) -> Self {
        let listener = TcpListener::bind(listen).await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (cut, mut cut_rx) = watch::channel(false);
        let (frozen, frozen_rx) = watch::channel(0u64);
        let (holes, holes_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    _ = cut_rx.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        let mut frozen = frozen_rx.clone();
                        let generation = *frozen.borrow_and_update();
                        if *holes_rx.borrow() {
                            // Accepted, then nothing: the peer waits for bytes that never come.
                            connections.spawn(async move {
                                let _held = inbound;
                                std::future::pending::<()>().await;
                            });
                            continue;
                        }
                        connections.spawn(async move {
                            let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                () = async { drop(frozen.wait_for(|now| *now > generation).await) } => {
                                    // Silently dead: both sockets stay open, nothing moves.
                                    std::future::pending::<()>().await;
                                }
                            }
                        });
                    }
                }
            }
            // Dropping the listener refuses new connections; aborting closes the open ones.
            connections.abort_all();
        });
        Self { addr, cut, frozen, holes, task }
    }

    /// Makes every connection open now silently dead, as a NAT that forgot them would: no byte
    /// moves and nothing is closed. New connections are forwarded as before.
    pub fn freeze_open(&self) {
        self.frozen.send_modify(|generation| *generation += 1);
    }

    /// A network that drops every packet and resets nothing: the connections open now go
    /// silently dead ([`CuttableProxy::freeze_open`]), and new ones are accepted but get no byte
    /// back, until [`CuttableProxy::restore`].
    pub fn blackhole(&self) {
        self.holes.send_replace(true);
        self.freeze_open();
    }

    /// Forwards new connections again after [`CuttableProxy::blackhole`]. The connections that
    /// went dead stay dead, as half-open connections do until their owner gives up on them.
    pub fn restore(&self) {
        self.holes.send_replace(false);
    }

    /// Closes every forwarded connection and stops accepting new ones.
    pub async fn cut(self) {
        let _ = self.cut.send(true);
        let _ = self.task.await;
    }
}
