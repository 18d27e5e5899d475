with

source as (

    select * from {{ source('retailrocket', 'item_properties') }}

),

category_snapshots as (

    select
        cast(itemid as bigint) as item_id,
        cast(value as bigint) as category_id,
        cast(timestamp as bigint) as snapshot_ms

    from source
    where property = 'categoryid'

),

final as (

    select
        item_id,
        category_id,
        snapshot_ms as valid_from_ms,
        coalesce(
            lead(snapshot_ms) over (partition by item_id order by snapshot_ms), 9223372036854775807
        ) as valid_to_ms

    from category_snapshots

)

select * from final
