//! `marr verify`: checks the audit chain (and, offline, every projection) and reports the
//! first broken link or each disagreement.

use super::{ClientError, Connection};
use crate::proto;
use crate::store::{Location, Store, StoreError, StoreOptions};

/// What verification found: lines to print, and whether everything held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    pub lines: Vec<String>,
    pub intact: bool,
}

impl Findings {
    fn audit(verdict: Result<u64, String>) -> Self {
        match verdict {
            Ok(events) => Self {
                lines: vec![format!("audit chain intact: {events} events checked")],
                intact: true,
            },
            Err(reason) => Self {
                lines: vec![reason],
                intact: false,
            },
        }
    }
}

/// Asks a running server to walk its audit chain (administrators).
pub async fn audit_online(connection: &Connection) -> Result<Findings, ClientError> {
    let answer = connection
        .audit()
        .verify_audit(proto::VerifyAuditRequest {})
        .await?
        .into_inner();
    Ok(Findings::audit(if answer.intact {
        Ok(answer.events_checked)
    } else {
        Err(format!(
            "the audit chain is broken at event {}: {}",
            answer.broken_at_sequence, answer.reason
        ))
    }))
}

/// Opens a stopped server's store (sled or PostgreSQL) and checks the audit chain and, unless
/// `audit_only`, that every projection agrees with the log; with `repair`, rewrites
/// projections that do not from the log. (The audit chain is never repaired: a break in it is
/// evidence.)
pub async fn offline(
    location: &Location,
    audit_only: bool,
    repair: bool,
) -> Result<Findings, ClientError> {
    let unreadable = |error: StoreError| ClientError::Input {
        path: location.to_string(),
        reason: format!("{error} (verify needs every server of the store stopped)"),
    };
    if let Location::Sled(dir) = location
        && !dir.join("conf").exists()
    {
        return Err(ClientError::Input {
            path: dir.display().to_string(),
            reason: "is not a marr data directory".into(),
        });
    }
    let at = location.clone();
    let store = tokio::task::spawn_blocking(move || Store::open_at(&at, StoreOptions::default()))
        .await
        .map_err(|e| unreadable(StoreError::WriterFailed(e.to_string())))?
        .map_err(unreadable)?;
    let checking = store.clone();
    let (chain, projections, releases) = tokio::task::spawn_blocking(move || {
        let chain = checking.verify_audit()?;
        let (projections, releases) = if audit_only {
            (Vec::new(), Vec::new())
        } else {
            (checking.verify_projections()?, checking.verify_releases()?)
        };
        Ok::<_, StoreError>((chain, projections, releases))
    })
    .await
    .map_err(|e| unreadable(StoreError::WriterFailed(e.to_string())))?
    .map_err(unreadable)?;
    let mut findings = Findings::audit(chain.map_err(|broken| broken.to_string()));
    if !audit_only {
        // A published release is never rewritten. It is recomputed with today's geography,
        // so places imported since it was cut can explain a difference: reported, not failed.
        if releases.is_empty() {
            findings
                .lines
                .push("every open-data release reproduces from the log".into());
        } else {
            findings.lines.extend(releases.into_iter().map(|line| {
                format!("note: {line} (places imported since the release can explain this)")
            }));
        }
        if projections.is_empty() {
            findings.lines.push(format!(
                "projections agree with the log (head {})",
                store.head_sequence()
            ));
        } else {
            findings.lines.extend(projections);
            if repair {
                let changed = store.repair_projections().await.map_err(unreadable)?;
                let checking = store.clone();
                let left = tokio::task::spawn_blocking(move || checking.verify_projections())
                    .await
                    .map_err(|e| unreadable(StoreError::WriterFailed(e.to_string())))?
                    .map_err(unreadable)?;
                findings.lines.push(format!(
                    "repaired: {changed} projection entries rewritten from the log"
                ));
                findings.intact &= left.is_empty();
                findings.lines.extend(left);
            } else {
                findings.intact = false;
            }
        }
    }
    store.close().await.map_err(unreadable)?;
    Ok(findings)
}
