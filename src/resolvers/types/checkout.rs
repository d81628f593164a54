use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{CartItem, Money, PageInfo, SerialList};
use crate::domain::checkout as domain;
use crate::domain::orders;
use crate::domain::payments;
use crate::domain::primitives::Money as DomainMoney;
use crate::error::ApiResult;
use crate::resolvers::loaders;

/// The same enum in GraphQL and in the domain, mapped both ways.
macro_rules! mirrored_enum {
    ($name:ident => $domain:path { $($variant:ident),+ $(,)? }) => {
        #[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
        #[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),+ }

        impl From<$domain> for $name {
            fn from(value: $domain) -> Self {
                use $domain as D;
                match value { $(D::$variant => $name::$variant),+ }
            }
        }

        impl From<$name> for $domain {
            fn from(value: $name) -> Self {
                use $domain as D;
                match value { $($name::$variant => D::$variant),+ }
            }
        }
    };
}

mirrored_enum!(CheckoutStatus => domain::CheckoutStatus { Reserved, Completed, Expired, Cancelled, Failed });
mirrored_enum!(OrderStatus => orders::OrderStatus {
    PendingPayment, Paid, Fulfilled, Shipped, Delivered, Cancelled, Refunded
});
mirrored_enum!(PaymentStatus => payments::PaymentStatus { Processing, Completed, Failed, Refunded });

fn money(cents: i64, currency: &str) -> Money {
    Money::from(&DomainMoney { cents, currency: currency.to_owned() })
}

pub struct CheckoutSession(pub domain::CheckoutSession);

#[Object]
impl CheckoutSession {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn status(&self) -> CheckoutStatus {
        self.0.status.into()
    }

    /// Until then the stock is held; afterwards it returns to sale.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }

    /// The cart's lines at the prices they will be charged at.
    async fn items(&self, ctx: &Context<'_>) -> ApiResult<SerialList<CartItem<'_>>> {
        CartItem::batch(ctx, &self.0.lines).await
    }

    async fn subtotal(&self) -> Money {
        money(self.0.totals.subtotal, &self.0.totals.currency)
    }

    async fn shipping(&self) -> Money {
        money(self.0.totals.shipping, &self.0.totals.currency)
    }

    /// Tax for the default destination; placeOrder recomputes it for the shipping address.
    async fn tax(&self) -> Money {
        money(self.0.totals.tax, &self.0.totals.currency)
    }

    async fn total(&self) -> Money {
        money(self.0.totals.total, &self.0.totals.currency)
    }
}

#[derive(InputObject, Debug)]
pub struct AddressInput {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

impl From<AddressInput> for domain::Address {
    fn from(a: AddressInput) -> Self {
        domain::Address {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct PlaceOrderInput {
    pub checkout_session_id: ID,
    /// Payment processor token, e.g. the test gateway's pm_card_visa.
    pub payment_method_id: String,
    pub shipping_address: AddressInput,
    /// Optional; when given, the fraud rules compare it with the shipping address.
    pub billing_address: Option<AddressInput>,
    pub idempotency_key: String,
}

impl From<PlaceOrderInput> for crate::services::checkout::PlaceOrder {
    fn from(input: PlaceOrderInput) -> Self {
        crate::services::checkout::PlaceOrder {
            session_id: input.checkout_session_id.0,
            payment_method: input.payment_method_id,
            shipping_address: input.shipping_address.into(),
            billing_address: input.billing_address.map(Into::into),
            idempotency_key: input.idempotency_key,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Payment {
    pub id: ID,
    pub status: PaymentStatus,
    pub amount: Money,
    pub gateway_reference: Option<String>,
}

impl From<payments::Payment> for Payment {
    fn from(p: payments::Payment) -> Self {
        Payment {
            id: ID(p.id),
            status: p.status.into(),
            amount: Money::from(&p.amount),
            gateway_reference: p.gateway_reference,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct OrderEvent {
    pub order_id: ID,
    /// PLACED, then the status the order moved to.
    #[graphql(name = "type")]
    pub kind: String,
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
}

impl From<orders::OrderEvent> for OrderEvent {
    fn from(e: orders::OrderEvent) -> Self {
        OrderEvent { order_id: ID(e.order_id), kind: e.kind, status: e.status.into(), at: e.at }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

pub struct Order(pub orders::Order);

#[Object]
impl Order {
    async fn id(&self) -> ID {
        ID(self.0.placed.id.clone())
    }

    async fn status(&self) -> OrderStatus {
        self.0.status.into()
    }

    async fn items(&self, ctx: &Context<'_>) -> ApiResult<SerialList<CartItem<'_>>> {
        CartItem::batch(ctx, &self.0.placed.lines).await
    }

    async fn subtotal(&self) -> Money {
        money(self.0.placed.totals.subtotal, &self.0.placed.totals.currency)
    }

    async fn shipping(&self) -> Money {
        money(self.0.placed.totals.shipping, &self.0.placed.totals.currency)
    }

    async fn tax(&self) -> Money {
        money(self.0.placed.totals.tax, &self.0.placed.totals.currency)
    }

    async fn total(&self) -> Money {
        money(self.0.placed.totals.total, &self.0.placed.totals.currency)
    }

    async fn shipping_address(&self) -> Address {
        let a = self.0.placed.shipping_address.clone();
        Address {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        }
    }

    /// The charge; null while the order waits for review.
    async fn payment(&self, ctx: &Context<'_>) -> ApiResult<Option<Payment>> {
        let Some(id) = &self.0.payment_id else { return Ok(None) };
        Ok(loaders(ctx).payments().load_one(id.clone()).await?.map(Payment::from))
    }

    /// Event-sourced history: every state change, oldest first.
    async fn events(&self, ctx: &Context<'_>) -> ApiResult<Vec<OrderEvent>> {
        let events = loaders(ctx).order_events().load_one(self.0.placed.id.clone()).await?;
        Ok(events.unwrap_or_default().into_iter().map(OrderEvent::from).collect())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.placed.created_at
    }
}

pub struct OrderEdge(pub orders::Order);

#[Object]
impl OrderEdge {
    async fn node(&self) -> Order {
        Order(self.0.clone())
    }

    async fn cursor(&self) -> String {
        crate::services::orders::cursor_of(&self.0)
    }
}

#[derive(SimpleObject)]
pub struct OrderConnection {
    pub edges: Vec<OrderEdge>,
    pub page_info: PageInfo,
}
