{#- A conversion rate per key (item or category) at each cut-off this build makes: how many visitors viewed and
    bought it before the cut-off (each visitor counted once, on its first view or purchase, from the daily rollup
    `rollup`), smoothed towards the shop-wide rate with var conversion_prior_weight pseudo-viewers so that rarely
    seen keys do not get extreme rates. The whole body of int_item_conversions_folded and
    int_category_conversions_folded. -#}
{% macro conversions_folded(rollup, key, rate_column) -%}
{%- set build = cutoffs_to_build('features') -%}
{%- set base_day = fold_base_day(build) -%}

with

first_views_and_purchases as (

    select * from {{ rollup }}
    where is_first_view or is_first_purchase

),

{{ fold_to_cutoffs(
    'first_views_and_purchases',
    keys=[key],
    sums={
        'num_viewers': 'case when is_first_view then 1 else 0 end',
        'num_buyers': 'case when is_first_purchase then 1 else 0 end',
    },
    cutoffs=build,
    base_day=base_day,
) }},

shop_rates as (

    select
        as_of_date,
        -- Doubles, not decimals: Spark rounds a quotient of decimals, so the engines would differ in the last bits.
        cast(sum(num_buyers) + 1 as double) / (sum(num_viewers) + 1) as shop_conversion_rate

    from folded
    group by 1

),

final as (

    select
        folded.as_of_date,
        folded.as_of_day,
        folded.{{ key }},
        folded.num_viewers,
        folded.num_buyers,
        (folded.num_buyers + {{ var('conversion_prior_weight') }} * shop_rates.shop_conversion_rate)
        / (folded.num_viewers + {{ var('conversion_prior_weight') }}) as {{ rate_column }}

    from folded
    inner join shop_rates
        on folded.as_of_date = shop_rates.as_of_date

)

select * from final
{%- endmacro %}
