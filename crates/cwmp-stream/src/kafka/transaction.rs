//! Kafka transactions, as every exactly-once stage uses them: how long a call may
//! take, and which failures abort the transaction (and are retried) and which stop
//! the service (the producer was fenced by a newer instance with its id).

use std::time::Duration;

use rdkafka::error::KafkaError;

/// The bound of each transactional call (init, offsets, commit, abort).
pub const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// How a transactional call failed.
#[derive(Debug)]
pub enum TxnError {
    /// Abort the transaction and process its inputs again.
    Abortable(anyhow::Error),
    /// Stop: this producer can no longer transact.
    Fatal(anyhow::Error),
}

/// Sorts a failed call's error: fatal when librdkafka says so, or when it neither
/// needs an abort nor can be retried.
pub fn classify(err: KafkaError, what: &str) -> TxnError {
    let fatal = match &err {
        KafkaError::Transaction(e) => e.is_fatal() || !e.txn_requires_abort() && !e.is_retriable(),
        _ => false,
    };
    let err = anyhow::Error::new(err).context(what.to_owned());
    if fatal {
        TxnError::Fatal(err)
    } else {
        TxnError::Abortable(err)
    }
}

/// How an exactly-once transaction ended: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    Committed,
    Aborted,
}

impl TxnOutcome {
    pub const ALL: [TxnOutcome; 2] = [TxnOutcome::Committed, TxnOutcome::Aborted];

    pub fn as_str(self) -> &'static str {
        match self {
            TxnOutcome::Committed => "committed",
            TxnOutcome::Aborted => "aborted",
        }
    }
}
