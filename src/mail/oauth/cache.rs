//! The run's token, shared by the run's connections: fetched once, renewed
//! at most once.

use std::sync::Mutex;

use super::{AccessToken, TokenError};

type Fetch = Box<dyn Fn() -> Result<AccessToken, TokenError> + Send + Sync>;

/// The run's token: fetched on first use, fetched again only when the relay
/// rejects it, and at most once a run, so a relay that rejects the renewed
/// token too ends the run. A failed fetch is final for the run too: the
/// other connections get the same error without asking again. Shared by the
/// run's connections.
pub struct TokenCache {
    fetch: Fetch,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    token: Option<AccessToken>,
    failed: Option<TokenError>,
    renewed: bool,
    fetches: usize,
}

impl CacheState {
    fn fetch(&mut self, fetch: &Fetch) -> Result<AccessToken, TokenError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        self.fetches += 1;
        match fetch() {
            Ok(token) => {
                self.token = Some(token.clone());
                Ok(token)
            }
            Err(error) => {
                self.token = None;
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }
}

impl TokenCache {
    pub fn new(fetch: impl Fn() -> Result<AccessToken, TokenError> + Send + Sync + 'static) -> TokenCache {
        TokenCache {
            fetch: Box::new(fetch),
            state: Mutex::new(CacheState::default()),
        }
    }

    /// The token, fetched on the first call.
    pub fn current(&self) -> Result<AccessToken, TokenError> {
        // The lock is held while fetching: other connections wait for this
        // token rather than each asking for one.
        let mut state = self.state.lock().unwrap();
        if let Some(token) = &state.token {
            return Ok(token.clone());
        }
        state.fetch(&self.fetch)
    }

    /// The relay rejected `rejected` (535): a new token, or `None` when the
    /// token was already renewed once this run and the rejection is final.
    /// A connection still holding the old token gets the renewed one, with
    /// no new request.
    pub fn refresh_after_rejection(&self, rejected: &AccessToken) -> Result<Option<AccessToken>, TokenError> {
        let mut state = self.state.lock().unwrap();
        if let Some(error) = &state.failed {
            return Err(error.clone());
        }
        if let Some(token) = state.token.as_ref().filter(|token| *token != rejected) {
            return Ok(Some(token.clone()));
        }
        if state.renewed {
            return Ok(None);
        }
        state.renewed = true;
        state.fetch(&self.fetch).map(Some)
    }

    /// How many times a token was asked for this run.
    #[cfg(test)]
    pub fn fetches(&self) -> usize {
        self.state.lock().unwrap().fetches
    }
}

#[cfg(test)]
mod tests {
    use super::super::Problem;
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn connections_asking_at_once_share_one_fetch() {
        let (cache, calls) = counting_cache(usize::MAX);
        let cache = Arc::new(cache);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || cache.current().unwrap())
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap().secret(), "tok-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    fn counting_cache(fail_from: usize) -> (TokenCache, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let cache = TokenCache::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= fail_from {
                return Err(TokenError::new("https://t/", Problem::Unreachable("down".into())));
            }
            Ok(AccessToken::new(format!("tok-{n}"), None))
        });
        (cache, calls)
    }

    #[test]
    fn the_token_is_fetched_once_and_renewed_once() {
        let (cache, calls) = counting_cache(usize::MAX);
        let first = cache.current().unwrap();
        assert_eq!(cache.current().unwrap(), first);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let second = cache.refresh_after_rejection(&first).unwrap().unwrap();
        assert_eq!(second.secret(), "tok-2");
        // Another connection rejected with the old token: the new one, no request.
        assert_eq!(cache.refresh_after_rejection(&first).unwrap(), Some(second.clone()));
        assert_eq!(cache.current().unwrap(), second);
        // The renewed token rejected too: final.
        assert_eq!(cache.refresh_after_rejection(&second).unwrap(), None);
        assert_eq!((calls.load(Ordering::SeqCst), cache.fetches()), (2, 2));
    }

    #[test]
    fn a_failed_fetch_is_the_callers_error() {
        let (cache, calls) = counting_cache(1);
        assert!(matches!(cache.current().unwrap_err().problem, Problem::Unreachable(_)));
        // The other connections get the same error without asking again.
        assert!(cache.current().is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let (cache, calls) = counting_cache(2);
        let first = cache.current().unwrap();
        assert!(cache.refresh_after_rejection(&first).is_err());
        assert!(cache.refresh_after_rejection(&first).is_err());
        assert!(cache.current().is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
