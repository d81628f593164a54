//! Table definitions shared by both backends (the migrations under `migrations/` are the source;
//! only column types portable between SQLite and PostgreSQL are used).

diesel::table! {
    categories (id) {
        id -> Text,
        name -> Text,
        parent_id -> Nullable<Text>,
        path -> Text,
        depth -> Integer,
    }
}

diesel::table! {
    products (id) {
        id -> Text,
        title -> Text,
        description -> Text,
        brand -> Nullable<Text>,
        category_id -> Nullable<Text>,
        price_cents -> BigInt,
        currency_code -> Text,
        rating -> Nullable<Double>,
        review_count -> Integer,
        popularity -> BigInt,
        attributes -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    inventory (product_id) {
        product_id -> Text,
        available -> Integer,
        reserved -> Integer,
        version -> BigInt,
    }
}

diesel::table! {
    stock_sales (id) {
        id -> BigInt,
        product_id -> Text,
        quantity -> Integer,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        family_id -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    carts (id) {
        id -> Text,
        owner -> Text,
        version -> BigInt,
        updated_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        lines -> Text,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        topic -> Text,
        payload -> Text,
        created_at -> Timestamp,
        published_at -> Nullable<Timestamp>,
        claimed_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    checkout_sessions (id) {
        id -> Text,
        owner -> Text,
        status -> Text,
        items -> Text,
        subtotal_cents -> BigInt,
        shipping_cents -> BigInt,
        tax_cents -> BigInt,
        total_cents -> BigInt,
        currency_code -> Text,
        saga_id -> Nullable<Text>,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        flash_sale_id -> Nullable<Text>,
    }
}

diesel::table! {
    checkout_sagas (id) {
        id -> Text,
        owner -> Text,
        idempotency_key -> Text,
        request_hash -> Text,
        session_id -> Text,
        step -> Text,
        request -> Text,
        order_id -> Nullable<Text>,
        failure -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        lease_until -> Timestamp,
    }
}

diesel::table! {
    payments (id) {
        id -> Text,
        saga_id -> Text,
        owner -> Text,
        attempt -> Integer,
        idempotency_key -> Text,
        status -> Text,
        amount_cents -> BigInt,
        currency_code -> Text,
        payment_method -> Text,
        gateway_reference -> Nullable<Text>,
        failure -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    orders (id) {
        id -> Text,
        owner -> Text,
        status -> Text,
        items -> Text,
        subtotal_cents -> BigInt,
        shipping_cents -> BigInt,
        tax_cents -> BigInt,
        total_cents -> BigInt,
        currency_code -> Text,
        shipping_address -> Text,
        session_id -> Text,
        saga_id -> Text,
        payment_id -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    order_claims (order_id, version) {
        order_id -> Text,
        version -> BigInt,
        claimed_until -> Timestamp,
    }
}

diesel::table! {
    order_events (order_id, seq) {
        order_id -> Text,
        seq -> BigInt,
        event_type -> Text,
        status -> Text,
        data -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    notifications (id) {
        id -> Text,
        order_id -> Text,
        recipient -> Text,
        subject -> Text,
        body -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    interactions (id) {
        id -> BigInt,
        shopper -> Text,
        product_id -> Text,
        kind -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    recommender_models (id) {
        id -> Text,
        version -> BigInt,
        trained_at -> Nullable<Timestamp>,
        lease_until -> Timestamp,
        model -> Nullable<Text>,
    }
}

diesel::table! {
    flash_sales (id) {
        id -> Text,
        product_id -> Text,
        sale_price_cents -> BigInt,
        currency_code -> Text,
        quantity -> Integer,
        remaining -> Integer,
        starts_at -> Timestamp,
        ends_at -> Timestamp,
        per_user_limit -> Integer,
        admission_per_minute -> Integer,
        hold_seconds -> Integer,
        shuffled -> Bool,
        rate_limited -> Integer,
        returned_to_stock -> Integer,
        ended_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    flash_sale_entries (sale_id, shopper) {
        sale_id -> Text,
        shopper -> Text,
        status -> Text,
        quantity -> Integer,
        ticket -> Nullable<BigInt>,
        checkout_session_id -> Nullable<Text>,
        expires_at -> Nullable<Timestamp>,
        admitted_at -> Nullable<Timestamp>,
        joined_at -> Timestamp,
    }
}

diesel::joinable!(products -> categories (category_id));
diesel::joinable!(inventory -> products (product_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(order_events -> orders (order_id));

diesel::allow_tables_to_appear_in_same_query!(
    categories,
    products,
    inventory,
    stock_sales,
    users,
    refresh_tokens,
    carts,
    outbox,
    checkout_sessions,
    checkout_sagas,
    payments,
    orders,
    order_claims,
    order_events,
    notifications,
    interactions,
    recommender_models,
    flash_sales,
    flash_sale_entries
);
