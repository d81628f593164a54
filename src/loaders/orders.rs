use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use crate::domain::orders::OrderEvent;
use crate::domain::payments::Payment;
use crate::error::ApiError;
use crate::services::orders::OrderService;

/// Each order's events, oldest first, keyed by order id.
pub struct OrderEventsLoader(pub OrderService);

impl Loader<String> for OrderEventsLoader {
    type Value = Vec<OrderEvent>;
    type Error = ApiError;

    async fn load(&self, order_ids: &[String]) -> Result<HashMap<String, Vec<OrderEvent>>, ApiError> {
        let mut by_order: HashMap<String, Vec<OrderEvent>> = HashMap::new();
        for event in self.0.events(order_ids).await? {
            by_order.entry(event.order_id.clone()).or_default().push(event);
        }
        Ok(by_order)
    }
}

pub struct PaymentLoader(pub OrderService);

impl Loader<String> for PaymentLoader {
    type Value = Payment;
    type Error = ApiError;

    async fn load(&self, ids: &[String]) -> Result<HashMap<String, Payment>, ApiError> {
        Ok(self.0.payments(ids).await?.into_iter().map(|p| (p.id.clone(), p)).collect())
    }
}
