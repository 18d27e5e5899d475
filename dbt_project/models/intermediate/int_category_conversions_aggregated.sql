{#- How often a category's viewers bought in it, from events before each cut-off only, smoothed towards the
    shop-wide rate. -#}
with

cutoffs as (

    select * from {{ ref('int_cutoffs_generated') }}
    where needs_features

),

events as (

    select * from {{ ref('stg_retailrocket__events') }}

),

item_categories as (

    select * from {{ ref('stg_retailrocket__item_categories') }}

),

category_counts as (

    select
        cutoffs.as_of_date,
        item_categories.category_id,
        count(distinct case when events.is_view then events.visitor_id end) as num_viewers,
        count(distinct case when events.is_transaction then events.visitor_id end) as num_buyers

    from cutoffs
    inner join events
        on cutoffs.cutoff_ms > events.event_ms
    inner join item_categories
        on events.item_id = item_categories.item_id
    group by 1, 2

),

shop_rates as (

    select
        as_of_date,
        (sum(num_buyers) + 1.0) / (sum(num_viewers) + 1.0) as shop_conversion_rate

    from category_counts
    group by 1

),

final as (

    select
        category_counts.as_of_date,
        category_counts.category_id,
        category_counts.num_viewers,
        category_counts.num_buyers,
        (category_counts.num_buyers + {{ var('conversion_prior_weight') }} * shop_rates.shop_conversion_rate)
        / (category_counts.num_viewers + {{ var('conversion_prior_weight') }}) as category_conversion_rate

    from category_counts
    inner join shop_rates
        on category_counts.as_of_date = shop_rates.as_of_date

)

select * from final
