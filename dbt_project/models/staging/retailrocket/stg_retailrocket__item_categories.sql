with

source as (

    select * from {{ source('retailrocket', 'item_properties') }}

),

category_snapshots as (

    select
        cast(itemid as bigint) as item_id,
        cast(value as bigint) as category_id,
        row_number() over (partition by itemid order by timestamp desc) as snapshot_rank

    from source
    where property = 'categoryid'

),

final as (

    select
        item_id,
        category_id

    from category_snapshots
    where snapshot_rank = 1

)

select * from final
