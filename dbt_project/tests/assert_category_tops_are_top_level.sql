-- Every category's traced top has no parent in the tree: a chain deeper than var max_category_depth (raise it) or a
-- cycle in the category tree would stop below the top.
with

category_tops as (

    select * from {{ ref('int_category_tops_traced') }}

),

categories as (

    select * from {{ ref('stg_retailrocket__categories') }}

)

select
    category_tops.category_id,
    category_tops.top_category_id,
    tops.parent_category_id

from category_tops
inner join categories as tops
    on category_tops.top_category_id = tops.category_id
inner join categories as parents
    on tops.parent_category_id = parents.category_id
