//! Exactly-once detect (`detect.delivery = "exactly-once"`): everything a stage
//! sends between two checkpoints — alerts, partials, closes — and then the
//! checkpoint's state records and the input offsets it corresponds to commit in one
//! Kafka transaction. Readers with `isolation.level=read_committed` (the fleet stage
//! reading partials, the state reader, alert consumers) see each output once.
//!
//! A transaction opens at the first output after a commit and closes at the next
//! checkpoint: every `checkpoint_interval_ms`, at a revoke (inside the rebalance
//! callback: every partition's checkpoint, not only the revoked ones, since their
//! outputs share the transaction) and at shutdown. When one is aborted, the state in
//! memory is ahead of what committed: every partition's state is dropped, the
//! consumer goes back to the committed offsets, and the partitions are restored
//! from their last committed checkpoint before anything else is consumed. A fenced
//! producer (another instance took this `transactional.id`) stops the stage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::Producer;
use rdkafka::Offset;

use super::state::{lock, Checkpointed, Checkpointer, Pending, Tasks};
use crate::config::Config;
use crate::kafka::transaction::{classify, TxnError, TxnOutcome, TXN_TIMEOUT};

/// The transactional id of a stage: the configured prefix, or
/// `<group_id>-<HOSTNAME>` (the pod name on Kubernetes), then the stage.
pub fn transactional_id(config: &Config, stage: super::metrics::DetectStage) -> String {
    let d = &config.detect;
    let prefix = if d.transactional_id.is_empty() {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
        format!("{}-{host}", d.group_id)
    } else {
        d.transactional_id.clone()
    };
    format!("{prefix}-{}", stage.as_str())
}

/// Whether a transaction is open, and whether an abort left the consumer to be
/// moved back before anything else is consumed.
#[derive(Debug, Default)]
pub struct Txn {
    open: AtomicBool,
    rewind: AtomicBool,
}

impl Checkpointer {
    /// Before any output: opens the transaction it belongs to (exactly-once).
    pub fn begin(&self) -> anyhow::Result<()> {
        let Some(txn) = &self.txn else {
            return Ok(());
        };
        if !txn.open.load(Ordering::SeqCst) {
            self.producer
                .begin_transaction()
                .context("beginning a transaction")?;
            txn.open.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// After an abort: drops every partition's state (already done) and moves the
    /// consumer back to the committed offsets of the partitions still assigned;
    /// `true` when it did (the batch in hand is to be dropped: its partitions are
    /// restored and consumed again).
    pub fn rewind_if_needed<C: ConsumerContext + 'static>(
        &self,
        tasks: &std::sync::Mutex<Tasks<impl Checkpointed>>,
        consumer: &StreamConsumer<C>,
    ) -> anyhow::Result<bool> {
        let Some(txn) = &self.txn else {
            return Ok(false);
        };
        if !txn.rewind.swap(false, Ordering::SeqCst) {
            return Ok(false);
        }
        lock(tasks).clear();
        let assigned = crate::kafka::assigned(consumer, &self.input_topic);
        let committed = tokio::task::block_in_place(|| {
            super::state::committed(consumer, &self.input_topic, &assigned)
        })?;
        for p in &assigned {
            let offset = committed
                .get(p)
                .map_or(Offset::Beginning, |&o| Offset::Offset(o));
            consumer
                .seek(&self.input_topic, *p, offset, Duration::from_secs(10))
                .with_context(|| {
                    format!(
                        "moving {}/{p} back to its committed offset after an abort",
                        self.input_topic
                    )
                })?;
        }
        tracing::info!(
            stage = self.stage.as_str(),
            partitions = ?assigned,
            "after the abort: partitions back at their committed offsets, their state restored next"
        );
        Ok(true)
    }

    /// The checkpoint that closes the transaction: the state records of every
    /// partition that changed, their offsets, commit. An abortable failure aborts
    /// and rewinds; a fatal one is the stage's error.
    pub(super) async fn checkpoint_in_transaction<S: Checkpointed, C: ConsumerContext + 'static>(
        &self,
        txn: &Txn,
        tasks: &std::sync::Mutex<Tasks<S>>,
        consumer: &StreamConsumer<C>,
    ) -> anyhow::Result<()> {
        let mut pending = self.take(&lock(tasks), None);
        if pending.is_empty() && !txn.open.load(Ordering::SeqCst) {
            return Ok(());
        }
        let outcome = async {
            self.begin().map_err(TxnError::Fatal)?;
            for p in &pending {
                for (key, value) in p.records() {
                    // Settled by the commit: the delivery futures are not needed.
                    crate::kafka::enqueue(&self.producer, self.record(p, key, value.as_deref()))
                        .await
                        .map_err(|e| classify(e, "writing a checkpoint in a transaction"))?;
                }
            }
            tokio::task::block_in_place(|| self.commit_transaction(consumer, &pending))
        }
        .await;
        self.settle(txn, tasks, &mut pending, outcome)
    }

    /// At a revoke, in the rebalance callback: commits the open transaction with
    /// every partition's checkpoint, then drops the revoked partitions' state.
    pub(super) fn flush_revoked_in_transaction<S: Checkpointed, C: ConsumerContext>(
        &self,
        txn: &Txn,
        tasks: &std::sync::Mutex<Tasks<S>>,
        consumer: &BaseConsumer<C>,
        revoked: &[i32],
        drain: Duration,
    ) {
        let mut pending = self.take(&lock(tasks), None);
        if !pending.is_empty() || txn.open.load(Ordering::SeqCst) {
            let outcome = self
                .begin()
                .map_err(TxnError::Fatal)
                .and_then(|()| {
                    self.send_now(&pending, Instant::now(), drain)
                        .map_err(|e| classify(e, "writing a checkpoint at revoke"))
                })
                .and_then(|_| self.commit_transaction(consumer, &pending));
            if let Err(err) = self.settle(txn, tasks, &mut pending, outcome) {
                // Fenced: the stage stops at its next transactional call too.
                tracing::error!(err = format!("{err:#}"), "transaction at revoke");
            }
        }
        let mut tasks = lock(tasks);
        for p in revoked {
            tasks.remove(p);
        }
        tracing::info!(
            stage = self.stage.as_str(),
            partitions = ?revoked,
            "revoked: transaction committed, state dropped"
        );
    }

    /// Offsets into the transaction, then commit.
    fn commit_transaction<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        pending: &[Pending],
    ) -> Result<(), TxnError> {
        if !pending.is_empty() {
            let offsets = self
                .offsets(pending)
                .map_err(|e| classify(e, "building the offsets"))?;
            let group = consumer.group_metadata().ok_or_else(|| {
                TxnError::Abortable(anyhow::anyhow!("no consumer group metadata yet"))
            })?;
            self.producer
                .send_offsets_to_transaction(&offsets, &group, TXN_TIMEOUT)
                .map_err(|e| classify(e, "sending offsets to the transaction"))?;
        }
        self.producer
            .commit_transaction(TXN_TIMEOUT)
            .map_err(|e| classify(e, "committing a transaction"))
    }

    /// After the commit or its failure: the books and counters of a commit; the
    /// abort, the state dropped and a rewind asked for; a fatal error returned.
    fn settle<S>(
        &self,
        txn: &Txn,
        tasks: &std::sync::Mutex<Tasks<S>>,
        pending: &mut [Pending],
        outcome: Result<(), TxnError>,
    ) -> anyhow::Result<()> {
        txn.open.store(false, Ordering::SeqCst);
        match outcome {
            Ok(()) => {
                let mut tasks = lock(tasks);
                self.delivered(&mut tasks, pending);
                self.committed(&mut tasks, pending);
                self.metrics.transaction(self.stage, TxnOutcome::Committed);
                Ok(())
            }
            Err(TxnError::Abortable(err)) => {
                self.metrics.transaction(self.stage, TxnOutcome::Aborted);
                tracing::warn!(
                    err = format!("{err:#}"),
                    stage = self.stage.as_str(),
                    "transaction aborted: every partition goes back to its last committed checkpoint"
                );
                self.producer
                    .abort_transaction(TXN_TIMEOUT)
                    .context("aborting a transaction")?;
                lock(tasks).clear();
                txn.rewind.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(TxnError::Fatal(err)) => Err(err),
        }
    }
}
