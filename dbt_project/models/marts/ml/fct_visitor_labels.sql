{{ config(materialized='incremental', unique_key='as_of_date', partition_by=['as_of_date']) }}
{#- Label: did the visitor buy at or after the cut-off and before cut-off + horizon. Features use shop days
    strictly before the cut-off, labels the days from it on: the two never share an event. A cut-off's labels are
    added once, when the job has seen every day of its window, and never change after. -#}
{%- set build = cutoffs_to_build('labels') -%}
{%- set horizon = var('label_horizon_days') -%}

with

cutoffs as (

    {{ cutoff_values(build) }}

),

population as (

    select
        as_of_date,
        visitor_id

    from {{ ref('fct_visitor_features') }}
    where as_of_date in ({% for c in build %}cast('{{ c.as_of_date }}' as date){% if not loop.last %}, {% endif %}
    {%- else %}null{% endfor %})

),

purchases as (

    select * from {{ ref('int_visitor_transactions_rolled_up') }}
    {%- if build %}
    where shop_day >= {{ build[0].as_of_day }} and shop_day < {{ build[-1].as_of_day + horizon }}
    {%- endif %}

),

purchases_in_window as (

    select
        cutoffs.as_of_date,
        purchases.visitor_id,
        count(distinct purchases.transaction_id) as num_transactions_in_window

    from purchases
    inner join cutoffs
        on
            purchases.shop_day >= cutoffs.as_of_day
            and purchases.shop_day < cutoffs.as_of_day + {{ horizon }}
    group by 1, 2

),

final as (

    select
        population.as_of_date,
        population.visitor_id,
        {{ horizon }} as horizon_days,
        cast(coalesce(purchases_in_window.num_transactions_in_window, 0) > 0 as integer) as has_purchased,
        coalesce(purchases_in_window.num_transactions_in_window, 0) as num_transactions_in_window

    from population
    left join purchases_in_window
        on
            population.as_of_date = purchases_in_window.as_of_date
            and population.visitor_id = purchases_in_window.visitor_id
    {%- if build | length > 1 %}
    order by population.as_of_date
    {%- endif %}

)

select * from final
