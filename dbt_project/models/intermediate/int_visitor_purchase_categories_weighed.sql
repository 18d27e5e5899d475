{#- Each customer's purchased categories at each cut-off this build makes, weighed by how often the customers of
    their top-level categories buy again: repeat purchase days per customer-day since a first purchase, smoothed
    towards the shop's rate with var repeat_rate_prior_days pseudo customer-days. What a category sells decides much
    of whether its buyers come back, and on an order system's log (no views) purchases are the only taste there is. -#}
{%- set build = cutoffs_to_build('features') -%}
{%- set day = 86400000 -%}
{%- set prior_days = var('repeat_rate_prior_days') -%}

with

category_purchases as (

    select * from {{ ref('int_visitor_category_purchases_folded') }}
    where {{ as_of_day_in(build) }}

),

category_tops as (

    select * from {{ ref('int_category_tops_traced') }}

),

totals as (

    select * from {{ ref('int_visitor_totals_folded') }}
    where {{ as_of_day_in(build) }}

),

customers as (

    select
        as_of_date,
        visitor_id,
        num_purchase_days_all - 1 as num_repeat_purchase_days,
        cutoff_ms - first_transaction_ms as ms_since_first_transaction

    from totals
    where num_purchase_days_all > 0

),

customer_top_categories as (

    select
        category_purchases.as_of_date,
        category_purchases.visitor_id,
        coalesce(category_tops.top_category_id, category_purchases.category_id) as top_category_id,
        sum(category_purchases.num_purchases) as num_purchases

    from category_purchases
    left join category_tops
        on category_purchases.category_id = category_tops.category_id
    group by 1, 2, 3

),

shop_rates as (

    -- Days as doubles: on Spark a literal such as 86400000.0 is a decimal, and a quotient of wide decimals is
    -- rounded to 6 places.
    select
        as_of_date,
        sum(num_repeat_purchase_days)
        / (cast(sum(ms_since_first_transaction) as double) / {{ day }}) as shop_repeat_rate

    from customers
    group by 1

),

top_category_rates as (

    select
        customer_top_categories.as_of_date,
        customer_top_categories.top_category_id,
        (sum(customers.num_repeat_purchase_days) + {{ prior_days }} * max(shop_rates.shop_repeat_rate))
        / (cast(sum(customers.ms_since_first_transaction) as double) / {{ day }} + {{ prior_days }})
            as top_category_repeat_rate

    from customer_top_categories
    inner join customers
        on
            customer_top_categories.as_of_date = customers.as_of_date
            and customer_top_categories.visitor_id = customers.visitor_id
    inner join shop_rates
        on customer_top_categories.as_of_date = shop_rates.as_of_date
    group by 1, 2

),

final as (

    select
        customer_top_categories.as_of_date,
        customer_top_categories.visitor_id,
        {{ exact_weighted_mean(
            'top_category_rates.top_category_repeat_rate', 'customer_top_categories.num_purchases'
        ) }} as purchased_category_repeat_rate

    from customer_top_categories
    inner join top_category_rates
        on
            customer_top_categories.as_of_date = top_category_rates.as_of_date
            and customer_top_categories.top_category_id = top_category_rates.top_category_id
    group by 1, 2

)

select * from final
