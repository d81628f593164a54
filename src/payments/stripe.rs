//! Stripe over HTTPS: a confirmed PaymentIntent per charge and a Refund per refund, each sent
//! with the `Idempotency-Key` header, so Stripe itself guarantees at most one charge per key.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::ports::{Charge, ChargeRequest, GatewayError, PaymentGateway};

/// After this a call is abandoned, its outcome unknown (the same key settles it later).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct StripeGateway {
    http: reqwest::Client,
    /// `https://api.stripe.com`, or a stub's address in tests.
    api_base: String,
    secret_key: String,
}

impl StripeGateway {
    pub fn new(api_base: &str, secret_key: &str) -> Result<Self, GatewayError> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| GatewayError::Failed(format!("building the Stripe client: {e}")))?;
        Ok(Self { http, api_base: api_base.trim_end_matches('/').to_owned(), secret_key: secret_key.to_owned() })
    }

    async fn post(&self, path: &str, idempotency_key: &str, form: &[(&str, String)]) -> Result<Value, GatewayError> {
        let request = self
            .http
            .post(format!("{}{path}", self.api_base))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", idempotency_key)
            .form(form);
        Self::answer(request).await
    }

    /// Stripe's answer, or its error as the port names it.
    async fn answer(request: reqwest::RequestBuilder) -> Result<Value, GatewayError> {
        let response = request
            .send()
            .await
            // The request may or may not have reached Stripe: only a retry with the same key knows.
            .map_err(|e| GatewayError::Unavailable(format!("Stripe unreachable: {e}")))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let error = &body["error"];
        let text = |field: &str| error[field].as_str().unwrap_or_default().to_owned();
        Err(match (status.as_u16(), text("type").as_str()) {
            (402, "card_error") if text("code") == "processing_error" => GatewayError::Transient(text("code")),
            (402, "card_error") => {
                let reason = Some(text("decline_code")).filter(|c| !c.is_empty()).unwrap_or_else(|| text("code"));
                GatewayError::Declined(reason)
            }
            (400 | 404, "invalid_request_error")
                if text("param") == "payment_method" || text("code") == "resource_missing" =>
            {
                GatewayError::UnknownPaymentMethod(text("message"))
            }
            // Another request with this key is still running at Stripe: its outcome is not known
            // yet, and asking again with the key later tells. Not a decline.
            (409, "idempotency_error") => GatewayError::Unavailable(format!("Stripe: {}", text("message"))),
            (429 | 500..=599, _) => GatewayError::Unavailable(format!("Stripe answered {status}")),
            _ => GatewayError::Failed(format!("Stripe answered {status}: {}", text("message"))),
        })
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, GatewayError> {
        let form = [
            ("amount", request.amount.cents.to_string()),
            ("currency", request.amount.currency.to_lowercase()),
            ("payment_method", request.payment_method.clone()),
            ("confirm", "true".to_owned()),
            ("automatic_payment_methods[enabled]", "true".to_owned()),
            ("automatic_payment_methods[allow_redirects]", "never".to_owned()),
            ("description", request.description.clone()),
        ];
        let mut intent = self.post("/v1/payment_intents", &request.idempotency_key, &form).await?;
        let reference = intent["id"].as_str().unwrap_or_default().to_owned();
        if intent["status"] == "processing" && !reference.is_empty() {
            // A replayed key answers with the intent as it first was, so a payment the bank was
            // still settling then is read again as it stands now.
            let path: String = form_urlencoded::byte_serialize(reference.as_bytes()).collect();
            let current =
                self.http.get(format!("{}/v1/payment_intents/{path}", self.api_base)).bearer_auth(&self.secret_key);
            intent = Self::answer(current).await?;
        }
        match intent["status"].as_str() {
            Some("succeeded") if !reference.is_empty() => Ok(Charge { reference }),
            // Pending at the bank: neither charged nor declined yet, so the saga stays CHARGING.
            Some("processing") => Err(GatewayError::Unavailable(format!("payment {reference} is processing"))),
            // 3-D Secure and the like cannot complete in a server-side confirmation.
            Some(other) => Err(GatewayError::Declined(format!("payment {other}"))),
            None => Err(GatewayError::Failed("Stripe answered without a PaymentIntent status".to_owned())),
        }
    }

    async fn check_payment_method(&self, payment_method: &str) -> Result<(), GatewayError> {
        let path: String = form_urlencoded::byte_serialize(payment_method.as_bytes()).collect();
        let request =
            self.http.get(format!("{}/v1/payment_methods/{path}", self.api_base)).bearer_auth(&self.secret_key);
        Self::answer(request).await.map(drop)
    }

    fn longest_call(&self) -> Duration {
        CALL_TIMEOUT
    }

    async fn refund(&self, reference: &str, idempotency_key: &str) -> Result<(), GatewayError> {
        let refund = self.post("/v1/refunds", idempotency_key, &[("payment_intent", reference.to_owned())]).await?;
        match refund["status"].as_str() {
            Some("succeeded" | "pending") => Ok(()),
            other => Err(GatewayError::Failed(format!("refund {}", other.unwrap_or("without a status")))),
        }
    }
}
