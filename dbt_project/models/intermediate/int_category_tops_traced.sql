{#- Each category with its top-level ancestor, climbed one parent per join (a recursive CTE is not portable): a
    category whose chain is deeper than var max_category_depth stops at that depth, and a test says so. -#}
{%- set depth = var('max_category_depth') -%}

with

categories as (

    select * from {{ ref('stg_retailrocket__categories') }}

),

final as (

    select
        level_0.category_id,
        coalesce(
            {%- for level in range(depth, 0, -1) %}
                level_{{ level }}.category_id,
            {%- endfor %}
            level_0.category_id
        ) as top_category_id

    from
        categories as level_0
    {%- for level in range(1, depth + 1) %}
        left join categories as level_{{ level }}
            on level_{{ level - 1 }}.parent_category_id = level_{{ level }}.category_id
    {%- endfor %}

)

select * from final
