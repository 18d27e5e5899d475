{#- How often an item's viewers bought it, from events before each cut-off only; smoothed towards the
    shop-wide rate so that rarely seen items do not get extreme rates. -#}
with

cutoffs as (

    select * from {{ ref('int_cutoffs_generated') }}
    where needs_features

),

events as (

    select * from {{ ref('stg_retailrocket__events') }}

),

item_counts as (

    select
        cutoffs.as_of_date,
        events.item_id,
        count(distinct case when events.is_view then events.visitor_id end) as num_viewers,
        count(distinct case when events.is_transaction then events.visitor_id end) as num_buyers

    from cutoffs
    inner join events
        on cutoffs.cutoff_ms > events.event_ms
    group by 1, 2

),

shop_rates as (

    select
        as_of_date,
        (sum(num_buyers) + 1.0) / (sum(num_viewers) + 1.0) as shop_conversion_rate

    from item_counts
    group by 1

),

final as (

    select
        item_counts.as_of_date,
        item_counts.item_id,
        item_counts.num_viewers,
        item_counts.num_buyers,
        (item_counts.num_buyers + {{ var('conversion_prior_weight') }} * shop_rates.shop_conversion_rate)
        / (item_counts.num_viewers + {{ var('conversion_prior_weight') }}) as item_conversion_rate

    from item_counts
    inner join shop_rates
        on item_counts.as_of_date = shop_rates.as_of_date

)

select * from final
