{#- Each visitor's taste at each cut-off this build makes, from every categorised view before it: how well its
    categories sell (their conversion rates weighed by its views), how concentrated its views are, how many
    categories it viewed. -#}
{%- set build = cutoffs_to_build('features') -%}

with

category_views as (

    select * from {{ ref('int_visitor_category_views_folded') }}
    where {{ as_of_day_in(build) }} and {{ in_visitor_sample(build) }}

),

category_conversions as (

    select * from {{ ref('int_category_conversions_folded') }}
    where {{ as_of_day_in(build) }}

),

final as (

    select
        category_views.as_of_date,
        category_views.visitor_id,
        {{ exact_weighted_mean('category_conversions.category_conversion_rate', 'category_views.num_views') }}
            as category_conversion_rate,
        cast(max(category_views.num_views) as double) / sum(category_views.num_views) as top_category_view_share,
        count(*) as num_categories_viewed

    from category_views
    inner join category_conversions
        on
            category_views.as_of_date = category_conversions.as_of_date
            and category_views.category_id = category_conversions.category_id
    group by 1, 2

)

select * from final
