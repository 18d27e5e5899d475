{#- Per visitor, item and cut-off: the last add-to-cart and the last purchase of that item before the cut-off,
    so a cart still open (not bought since) can be told from one that was. -#}
with

cutoffs as (

    select * from {{ ref('int_cutoffs_generated') }}
    where needs_features

),

events as (

    select * from {{ ref('stg_retailrocket__events') }}
    where is_addtocart or is_transaction

),

final as (

    select
        cutoffs.as_of_date,
        events.visitor_id,
        events.item_id,
        max(case when events.is_addtocart then events.event_ms end) as last_addtocart_ms,
        max(case when events.is_transaction then events.event_ms end) as last_purchase_ms,
        coalesce(
            max(case when events.is_addtocart then events.event_ms end)
            > coalesce(max(case when events.is_transaction then events.event_ms end), 0),
            false
        ) as is_open_cart

    from cutoffs
    inner join events
        on cutoffs.cutoff_ms > events.event_ms
    group by 1, 2, 3

)

select * from final
