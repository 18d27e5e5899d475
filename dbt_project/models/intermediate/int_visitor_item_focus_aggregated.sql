{#- What the visitor looked at in the last 7 days before each cut-off this build makes: how often it came back to
    one item, and how well the items it viewed sell (their smoothed conversion rates at the cut-off). -#}
{%- set build = cutoffs_to_build('features') -%}

with

item_days as (

    {{ days_in_windows(ref('int_visitor_item_days_rolled_up'), build, 7) }}

),

item_conversions as (

    select * from {{ ref('int_item_conversions_folded') }}
    where {{ as_of_day_in(build) }}

),

item_views_7d as (

    select
        as_of_date,
        visitor_id,
        item_id,
        cast(sum(num_views) as bigint) as num_views

    from item_days
    where num_views > 0
    group by 1, 2, 3

),

final as (

    select
        item_views_7d.as_of_date,
        item_views_7d.visitor_id,
        max(item_views_7d.num_views) as max_views_of_one_item_7d,
        -- Exact sums: retraining on the same events, on either engine, must give the same model.
        {{ exact_mean('item_conversions.item_conversion_rate') }} as avg_item_conversion_rate_7d,
        max(item_conversions.item_conversion_rate) as max_item_conversion_rate_7d

    from item_views_7d
    left join item_conversions
        on
            item_views_7d.as_of_date = item_conversions.as_of_date
            and item_views_7d.item_id = item_conversions.item_id
    group by 1, 2

)

select * from final
