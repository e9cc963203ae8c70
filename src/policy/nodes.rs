//! Building the constant expressions the support functions hand to the planner.

use std::ffi::c_char;

use crm_model::OwnerId;
use pgrx::{pg_sys, PgBox, PgList};

/// `int8 = int8` (pg_operator.dat: Int8EqualOperator).
pub const INT8_EQ_OPERATOR: pg_sys::Oid = pg_sys::Oid::from_u32(410);

pub unsafe fn copy(n: *mut pg_sys::Node) -> *mut pg_sys::Node {
    pg_sys::copyObjectImpl(n.cast()).cast()
}

pub unsafe fn bool_const(value: bool) -> *mut pg_sys::Node {
    pg_sys::makeBoolConst(value, false)
}

pub unsafe fn int8_const(value: i64) -> *mut pg_sys::Node {
    pg_sys::makeConst(pg_sys::INT8OID, -1, pg_sys::InvalidOid, 8, pg_sys::Datum::from(value), false, true).cast()
}

pub unsafe fn int8_array_const(values: &[i64]) -> *mut pg_sys::Node {
    let mut datums: Vec<pg_sys::Datum> = values.iter().map(|&v| pg_sys::Datum::from(v)).collect();
    let array = pg_sys::construct_array(datums.as_mut_ptr(), datums.len() as i32, pg_sys::INT8OID, 8, true, b'd' as c_char);
    pg_sys::makeConst(pg_sys::INT8ARRAYOID, -1, pg_sys::InvalidOid, -1, pg_sys::Datum::from(array), false, false).cast()
}

/// `left = right` on bigints.
pub unsafe fn int8_eq(left: *mut pg_sys::Node, right: *mut pg_sys::Node) -> *mut pg_sys::Node {
    let op = pg_sys::make_opclause(INT8_EQ_OPERATOR, pg_sys::BOOLOID, false, left.cast(), right.cast(), pg_sys::InvalidOid, pg_sys::InvalidOid);
    (*op.cast::<pg_sys::OpExpr>()).opfuncid = pg_sys::Oid::from(pg_sys::F_INT8EQ);
    op.cast()
}

/// `array @> '{value}'::bigint[]` (a GIN-indexable containment test).
pub unsafe fn array_contains(array: *mut pg_sys::Node, value: OwnerId) -> *mut pg_sys::Node {
    let op = pg_sys::make_opclause(
        pg_sys::Oid::from(pg_sys::OID_ARRAY_CONTAINS_OP),
        pg_sys::BOOLOID,
        false,
        array.cast(),
        int8_array_const(&[value]).cast(),
        pg_sys::InvalidOid,
        pg_sys::InvalidOid,
    );
    (*op.cast::<pg_sys::OpExpr>()).opfuncid = pg_sys::Oid::from(pg_sys::F_ARRAYCONTAINS);
    op.cast()
}

/// `column = ANY('{...}'::bigint[])`
pub unsafe fn owner_in(column: *mut pg_sys::Node, owners: &[OwnerId]) -> *mut pg_sys::Node {
    let mut saop = PgBox::<pg_sys::ScalarArrayOpExpr>::alloc_node(pg_sys::NodeTag::T_ScalarArrayOpExpr);
    saop.opno = INT8_EQ_OPERATOR;
    saop.opfuncid = pg_sys::Oid::from(pg_sys::F_INT8EQ);
    saop.useOr = true;
    saop.inputcollid = pg_sys::InvalidOid;
    let mut args = PgList::<pg_sys::Node>::new();
    args.push(copy(column));
    args.push(int8_array_const(owners));
    saop.args = args.into_pg();
    saop.location = -1;
    saop.into_pg().cast()
}

fn combine(parts: PgList<pg_sys::Node>, kind: pg_sys::BoolExprType::Type, empty: bool) -> *mut pg_sys::Node {
    // SAFETY: `parts` holds valid expression nodes of the planning in progress; the list and
    // the BoolExpr are allocated in its current memory context, as PostgreSQL's own are.
    unsafe {
        match parts.len() {
            0 => bool_const(empty),
            1 => parts.get_ptr(0).expect("one part"),
            _ => pg_sys::makeBoolExpr(kind, parts.into_pg(), -1).cast(),
        }
    }
}

/// `a OR b OR ...` (`false` when empty).
pub fn any_of(parts: PgList<pg_sys::Node>) -> *mut pg_sys::Node {
    combine(parts, pg_sys::BoolExprType::OR_EXPR, false)
}

/// `a AND b AND ...` (`true` when empty).
pub fn all_of(parts: PgList<pg_sys::Node>) -> *mut pg_sys::Node {
    combine(parts, pg_sys::BoolExprType::AND_EXPR, true)
}
