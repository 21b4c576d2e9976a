//! `--daily-cap`: how many messages the runs of one window have taken for
//! sending (`send_caps`), shared by every run on every host.

use anyhow::Context;
use diesel::prelude::*;

use super::schema::send_caps;
use super::types::Timestamp;
use super::{Db, write_transaction};

/// Takes up to `wanted` of what is left of `cap` in the window starting at
/// `window`, and returns how many it took (0 when the cap is reached). One
/// write transaction, the row locked, so runs on several hosts never take
/// more than the cap between them.
pub fn reserve(db: &mut Db, window: Timestamp, cap: u32, wanted: u32) -> anyhow::Result<u32> {
    write_transaction!(db, conn => {
        diesel::insert_into(send_caps::table)
            .values((send_caps::window_start.eq(window), send_caps::used.eq(0)))
            .on_conflict(send_caps::window_start)
            .do_nothing()
            .execute(conn)?;
        // The UPDATE locks the row until commit on PostgreSQL (SQLite's BEGIN
        // IMMEDIATE holds the write lock already), so no other run reads it
        // between this read and the write.
        let row = send_caps::table.find(window);
        let used: i32 = diesel::update(row)
            .set(send_caps::used.eq(send_caps::used))
            .returning(send_caps::used)
            .get_result(conn)?;
        let granted = cap.saturating_sub(used.max(0) as u32).min(wanted);
        if granted > 0 {
            diesel::update(row)
                .set(send_caps::used.eq(send_caps::used + granted as i32))
                .execute(conn)?;
        }
        Ok(granted)
    })
    .context("cannot take a share of the daily cap")
}

/// Gives back `unused` of what a run took in the window starting at `window`.
pub fn give_back(db: &mut Db, window: Timestamp, unused: u32) -> anyhow::Result<()> {
    if unused == 0 {
        return Ok(());
    }
    write_transaction!(db, conn => {
        diesel::update(send_caps::table.find(window).filter(send_caps::used.ge(unused as i32)))
            .set(send_caps::used.eq(send_caps::used - unused as i32))
            .execute(conn)?;
        Ok(())
    })
    .context("cannot give back the unused share of the daily cap")
}
