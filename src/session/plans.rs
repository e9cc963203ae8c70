//! Which cached plans a change of acting user or catalog must throw away: only those that
//! hold a decision of ours, not every plan of the backend.
//!
//! Policies are specialised while planning (`policy::simplify`), so a plan embeds what one
//! acting user may reach under one catalog. Every planning that specialises records an
//! invalidation item on the plan it builds, a dependency on a function that does not exist
//! (oid 0, which no dependency PostgreSQL records can name). Firing that item through the
//! plan cache's own callback marks exactly those plans (and plpgsql's cached expressions)
//! for re-planning; statements that touch no protected table keep their generic plans
//! across users, and the query trees of specialised ones are kept too (only the plan is
//! rebuilt).

use std::cell::Cell;

use pgrx::pg_sys;

thread_local! {
    static MARKER_HASH: Cell<Option<u32>> = const { Cell::new(None) };
}

const MARKER_CACHE: pg_sys::SysCacheIdentifier::Type = pg_sys::SysCacheIdentifier::PROCOID;

fn marker_hash() -> u32 {
    MARKER_HASH.with(|h| {
        *h.get().get_or_insert_with(|| {
            // SAFETY: hashing a key needs the syscache initialised, which it is in any
            // backend that plans or runs our hooks; no catalog access happens.
            let hash = unsafe {
                pg_sys::GetSysCacheHashValue(
                    MARKER_CACHE as i32,
                    pg_sys::Datum::from(pg_sys::InvalidOid),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                )
            };
            // 0 means "every entry" to the callbacks; never send it (it cannot come out of
            // hashing oid 0 today, but the cost of being sure is one comparison).
            if hash == 0 { 1 } else { hash }
        })
    })
}

/// Record on the plan being built that it holds a decision of ours. Returns false when
/// there is no plan to record on, and then nothing may be specialised.
///
/// # Safety
/// `root` must be null or the planner's `PlannerInfo` of the planning in progress.
pub unsafe fn depends_on_acting_user(root: *mut pg_sys::PlannerInfo) -> bool {
    if root.is_null() || (*root).glob.is_null() {
        return false;
    }
    let glob = (*root).glob;
    let hash = marker_hash();
    let items = pgrx::PgList::<pg_sys::PlanInvalItem>::from_pg((*glob).invalItems);
    if items.iter_ptr().any(|i| (*i).cacheId == MARKER_CACHE as i32 && (*i).hashValue == hash) {
        return true;
    }
    // Allocated in the planner's memory context, like the items PostgreSQL records.
    let item = pg_sys::palloc0(std::mem::size_of::<pg_sys::PlanInvalItem>()).cast::<pg_sys::PlanInvalItem>();
    (*item).type_ = pg_sys::NodeTag::T_PlanInvalItem;
    (*item).cacheId = MARKER_CACHE as i32;
    (*item).hashValue = hash;
    (*glob).invalItems = pg_sys::lappend((*glob).invalItems, item.cast());
    true
}

/// Mark every cached plan holding a decision of ours for re-planning, in this backend.
pub fn invalidate() {
    // SAFETY: runs the syscache callbacks registered for the marker's cache with our hash;
    // the plan cache's marks plans invalid (no catalog access, no error), and any other
    // callback sees a hash of a function that does not exist. Safe inside GUC assign hooks,
    // invalidation callbacks and transaction callbacks (ResetPlanCache ran in the same places before).
    unsafe { pg_sys::CallSyscacheCallbacks(MARKER_CACHE as i32, marker_hash()) };
}
