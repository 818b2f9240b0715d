//! `marr.v1.Alerts`: boards watch alerts for their area, replayed from the alert log and then
//! live, with no gap and no duplicate.

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert::{coded_list, coded_option, page_size, record_ref, timestamp};
use crate::app::Application;
use crate::app::alerts::{AlertsAsked, FeedEvent};
use crate::auth::Caller;
use crate::domain::alert::Alert;
use crate::domain::{Invalid, Vocabulary};
use crate::proto::alerts_server::Alerts;
use crate::proto::{self, watch_response::Event};

pub struct AlertsService {
    app: Application,
}

impl AlertsService {
    pub fn new(app: Application) -> Self {
        Self { app }
    }
}

/// Reads the request's filter; its place is the application's to check.
fn asked_from_proto(filter: Option<proto::AlertFilter>) -> Result<AlertsAsked, Invalid> {
    let Some(filter) = filter else {
        return Ok(AlertsAsked::default());
    };
    Ok(AlertsAsked {
        client_groups: coded_list("filter.client_groups", &filter.client_groups)?,
        kinds: coded_list("filter.kinds", &filter.kinds)?,
        min_severity: coded_option("filter.min_severity", filter.min_severity)?,
        place: filter.place_code,
    })
}

pub fn alert_to_proto(alert: &Alert) -> proto::Alert {
    proto::Alert {
        sequence: alert.sequence,
        kind: alert.kind.number(),
        severity: alert.severity.number(),
        place_code: alert.place.to_string(),
        client_group: alert.client_group.map_or(0, |g| g.number()),
        records: alert.records.iter().map(record_ref).collect(),
        agency_ids: alert.agencies.iter().map(ToString::to_string).collect(),
        place_codes: alert.places.iter().map(ToString::to_string).collect(),
        subject_key: alert.subject.map(|s| s.to_string()).unwrap_or_default(),
        raised_by_sequence: alert.raised_by,
        raised_at: Some(timestamp(alert.raised_at)),
        detail: alert.detail.clone(),
    }
}

fn feed_event_to_proto(event: FeedEvent) -> proto::WatchResponse {
    let event = match event {
        FeedEvent::Alert(alert) => Event::Alert(alert_to_proto(&alert)),
        FeedEvent::Heartbeat { reached } => Event::Heartbeat(proto::Heartbeat {
            head_sequence: reached,
        }),
    };
    proto::WatchResponse { event: Some(event) }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<proto::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Alerts for AlertsService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<proto::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let feed = (|| {
            let asked = asked_from_proto(request.filter)?;
            self.app.alert_feed(&caller, asked, request.from_sequence)
        })();
        let feed = self.app.conclude(&caller, feed).await?;
        let events = feed
            .start()
            .map(|event| event.map(feed_event_to_proto).map_err(Status::from));
        Ok(Response::new(Box::pin(events)))
    }

    async fn list_alerts(
        &self,
        request: Request<proto::ListAlertsRequest>,
    ) -> Result<Response<proto::ListAlertsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let page = async {
            let asked = asked_from_proto(request.filter)?;
            let page_size = page_size(request.page_size)?;
            self.app
                .list_alerts(&caller, asked, request.after_sequence, page_size)
                .await
        };
        let page = self.app.conclude(&caller, page.await).await?;
        Ok(Response::new(proto::ListAlertsResponse {
            alerts: page.alerts.iter().map(alert_to_proto).collect(),
            next_after_sequence: page.next.unwrap_or(0),
            head_sequence: page.head,
        }))
    }
}
