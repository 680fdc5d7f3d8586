//! Preparing the next batch while the current one is used: image decoding runs beside the
//! forward pass instead of before it, so both keep the cores busy.

use std::sync::mpsc::sync_channel;

use crate::error::Result;

/// Calls `consume(prepare(chunk))` for each of `chunks` in order, with `prepare` of the next
/// chunk running on another thread meanwhile (at most one prepared chunk waits). The first
/// error of `consume` stops both sides and is returned.
pub(crate) fn prefetched<C: Send, P: Send>(
    chunks: impl Iterator<Item = C> + Send,
    prepare: impl Fn(C) -> P + Sync,
    mut consume: impl FnMut(P) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (send, receive) = sync_channel::<P>(1);
        let prepare = &prepare;
        scope.spawn(move || {
            for chunk in chunks {
                if send.send(prepare(chunk)).is_err() {
                    break; // the consuming side stopped on an error
                }
            }
        });
        for prepared in receive {
            consume(prepared)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn every_chunk_is_consumed_in_order() {
        let mut seen = Vec::new();
        let result = prefetched(
            0..50,
            |i| i * 2,
            |p| {
                seen.push(p);
                Ok(())
            },
        );
        assert!(result.is_ok());
        assert_eq!(seen, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn an_error_stops_the_run_and_is_returned() {
        let mut seen = 0;
        let result = prefetched(
            0..1_000_000,
            |i| i,
            |p| {
                seen += 1;
                if p == 3 {
                    Err(Error::InvalidArgument("stop".into()))
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(result, Err(Error::InvalidArgument(m)) if m == "stop"));
        assert_eq!(seen, 4);
    }
}
