{#- A session starts at a visitor's first event or after a gap longer than var session_gap_minutes. -#}
with

events as (

    select * from {{ ref('stg_retailrocket__events') }}

),

with_previous as (

    select
        *,
        lag(event_ms) over (partition by visitor_id order by event_ms, event_type, item_id) as previous_event_ms

    from events

),

final as (

    select
        visitor_id,
        item_id,
        transaction_id,
        event_type,
        event_ms,
        shop_date,
        is_view,
        is_addtocart,
        is_transaction,
        coalesce(event_ms - previous_event_ms > {{ var('session_gap_minutes') }} * 60000, true) as is_session_start

    from with_previous

)

select * from final
