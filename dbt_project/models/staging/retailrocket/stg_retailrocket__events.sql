with

source as (

    select * from {{ source('retailrocket', 'events') }}

),

renamed as (

    select
        cast(visitorid as bigint) as visitor_id,
        cast(itemid as bigint) as item_id,
        cast(transactionid as bigint) as transaction_id,
        event as event_type,
        cast(timestamp as bigint) as event_ms,
        {{ epoch_ms_to_timestamp('timestamp') }} as event_at,
        cast(
            {{ epoch_ms_to_timestamp('timestamp - ' ~ var('day_start_hour_utc') ~ ' * 3600000') }} as date
        ) as shop_date,
        {{ shop_day('timestamp') }} as shop_day,
        event = 'view' as is_view,
        event = 'addtocart' as is_addtocart,
        event = 'transaction' as is_transaction

    from source

)

select * from renamed
