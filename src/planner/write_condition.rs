//! The WHEN condition of the field check triggers (`crm.field_changes`, `crm.field_values`,
//! DESIGN §3.2) as plain column comparisons for the acting user: the trigger runs only for a
//! row that changes a field the writer may not change.

use pgrx::{pg_sys, PgBox, PgList};

use super::nodes::{self, constant, Constant, Node};
use super::RowVar;
use crate::enforce::fields::restricted_for_writer;
use crate::catalog::tables::{columns, default_of, Filled};

/// The condition under which a write must reach `crm.check_field_writes()`, over the
/// trigger's `OLD`/`NEW` row variables, for each field the writer may not change: for an
/// update, `OLD.f IS DISTINCT FROM NEW.f`; for an insert, `NEW.f IS NOT NULL` for a field
/// without a default and `NEW.f IS DISTINCT FROM <its default>` for one with a stable
/// default. `false` when nothing is restricted, so the trigger is not even called. `true`
/// when the trigger must look itself: a type without equality (it then compares bytes), or
/// a volatile default (it then puts a freshly computed default in the field).
pub fn write_condition(tbl: pg_sys::Oid, old: Option<RowVar>, new: RowVar) -> Node {
    let restricted = restricted_for_writer(tbl);
    let mut any = Vec::new();
    for c in columns(tbl) {
        if c.filled == Filled::Generated || !restricted.includes(&c.name) {
            continue;
        }
        // SAFETY: Vars of `tbl`'s live columns on the row variables' range table entries (the
        // caller checked that both are whole-row Vars of `tbl`'s row type); every node is new,
        // in the planning's memory context.
        let condition = unsafe {
            let var = |row: RowVar| pg_sys::makeVar(row.0.varno, c.attnum, c.typid, c.typmod, c.collation, 0).cast::<pg_sys::Node>();
            match (old, c.filled) {
                (Some(old), _) => distinct(c.typid, c.collation, var(old), var(new)),
                (None, Filled::Null) => {
                    let mut test = PgBox::<pg_sys::NullTest>::alloc_node(pg_sys::NodeTag::T_NullTest);
                    test.arg = var(new).cast();
                    test.nulltesttype = pg_sys::NullTestType::IS_NOT_NULL;
                    test.location = -1;
                    Some(test.into_pg().cast())
                }
                (None, _) => match default_of(tbl, c.attnum) {
                    Some((default, false)) => distinct(c.typid, c.collation, var(new), default),
                    _ => None,
                },
            }
        };
        match condition {
            Some(condition) => any.push(condition),
            None => return constant(Constant::Bool(true)),
        }
    }
    nodes::any(any)
}

/// The btree support function saying whether equality is equality of images (nbtree.h).
const BTEQUALIMAGE_PROC: i16 = 4;

/// `left IS DISTINCT FROM right` with the type's equality; `None` if the type has none, or if
/// values it calls equal may differ in bytes (numeric 100 and 100.0, interval '1 day' and
/// '24 hours', text under a case-insensitive collation): a read-only field could then be
/// rewritten with an "equal" value unseen (red team round 6), so the trigger, which compares
/// bytes, must see the row. Equal images are what the type's btree opclass vouches for with
/// its equalimage support function, as nbtree deduplication asks.
///
/// # Safety
/// `left` and `right` must be valid expressions of type `typid`.
unsafe fn distinct(typid: pg_sys::Oid, collation: pg_sys::Oid, left: Node, right: Node) -> Option<Node> {
    // bpchar's opclass vouches for equal images, but its equality ignores trailing spaces,
    // which an unbounded bpchar stores (red team round 7).
    if pg_sys::getBaseType(typid) == pg_sys::BPCHAROID {
        return None;
    }
    let cache = pg_sys::lookup_type_cache(typid, (pg_sys::TYPECACHE_EQ_OPR | pg_sys::TYPECACHE_BTREE_OPFAMILY) as i32);
    let (eq, family, input) = ((*cache).eq_opr, (*cache).btree_opf, (*cache).btree_opintype);
    if eq == pg_sys::InvalidOid || family == pg_sys::InvalidOid {
        return None;
    }
    let image = pg_sys::get_opfamily_proc(family, input, input, BTEQUALIMAGE_PROC);
    if image == pg_sys::InvalidOid || pg_sys::OidFunctionCall1Coll(image, collation, pg_sys::Datum::from(typid)).value() == 0 {
        return None;
    }
    let mut distinct = PgBox::<pg_sys::OpExpr>::alloc_node(pg_sys::NodeTag::T_DistinctExpr);
    distinct.opno = eq;
    distinct.opfuncid = pg_sys::get_opcode(eq);
    distinct.opresulttype = pg_sys::BOOLOID;
    distinct.inputcollid = collation;
    let mut args = PgList::<pg_sys::Node>::new();
    args.push(left);
    args.push(right);
    distinct.args = args.into_pg();
    distinct.location = -1;
    Some(distinct.into_pg().cast())
}
