//! Expression nodes for the planner: the engine's `Filter` as an expression over a call's
//! argument expressions, and the few other nodes the support functions hand back. Every node
//! is allocated in the current memory context, the planning's, as PostgreSQL's own are.

use std::ffi::c_char;

use crm_model::{Column, Filter};
use pgrx::{pg_sys, PgBox, PgList};

/// `int8 = int8` (pg_operator.dat: Int8EqualOperator).
const INT8_EQ_OPERATOR: pg_sys::Oid = pg_sys::Oid::from_u32(410);

/// A node of the expression being built.
pub type Node = *mut pg_sys::Node;

/// `filter` as an expression, with each column read from the expression `column` gives for
/// it (a call argument, copied wherever it is used); `None` if `filter` reads a column
/// `column` does not know, and then the call is kept. Id columns are bigint, id lists
/// bigint[], flags boolean: the policy functions' signatures say so.
pub fn filter(filter: &Filter, column: &impl Fn(Column) -> Option<Node>) -> Option<Node> {
    // Every column first: building allocates, and a missing column must not leave half a tree.
    let columns: Option<Vec<(Column, Node)>> = filter.columns().into_iter().map(|c| Some((c, column(c)?))).collect();
    let columns = columns?;
    let column = |c: Column| columns.iter().find(|(name, _)| *name == c).map(|(_, node)| *node).expect("every column was found");
    // SAFETY: the column expressions are valid nodes of the planning in progress; every node
    // built here is new, and every column expression is copied before it is placed.
    Some(unsafe { build(filter, &column) })
}

/// # Safety
/// `column` must give valid expressions of the planning in progress, of the types `filter`
/// compares them as (bigint, bigint[], boolean).
unsafe fn build(filter: &Filter, column: &impl Fn(Column) -> Node) -> Node {
    let col = |c: Column| pg_sys::copyObjectImpl(column(c).cast()).cast::<pg_sys::Node>();
    match filter {
        Filter::Const(b) => make(Constant::Bool(*b)),
        Filter::Eq(c, v) => {
            let op = pg_sys::make_opclause(INT8_EQ_OPERATOR, pg_sys::BOOLOID, false, col(c).cast(), make(Constant::Int8(*v)).cast(), pg_sys::InvalidOid, pg_sys::InvalidOid);
            (*op.cast::<pg_sys::OpExpr>()).opfuncid = pg_sys::Oid::from(pg_sys::F_INT8EQ);
            op.cast()
        }
        Filter::In(c, ids) => {
            let mut saop = PgBox::<pg_sys::ScalarArrayOpExpr>::alloc_node(pg_sys::NodeTag::T_ScalarArrayOpExpr);
            saop.opno = INT8_EQ_OPERATOR;
            saop.opfuncid = pg_sys::Oid::from(pg_sys::F_INT8EQ);
            saop.useOr = true;
            saop.inputcollid = pg_sys::InvalidOid;
            let mut args = PgList::<pg_sys::Node>::new();
            args.push(col(c));
            args.push(make(Constant::Int8Array(ids)));
            saop.args = args.into_pg();
            saop.location = -1;
            saop.into_pg().cast()
        }
        // `array @> '{value}'::bigint[]`: a GIN-indexable containment test.
        Filter::Contains(c, v) => {
            let op = pg_sys::make_opclause(
                pg_sys::Oid::from(pg_sys::OID_ARRAY_CONTAINS_OP),
                pg_sys::BOOLOID,
                false,
                col(c).cast(),
                make(Constant::Int8Array(&[*v])).cast(),
                pg_sys::InvalidOid,
                pg_sys::InvalidOid,
            );
            (*op.cast::<pg_sys::OpExpr>()).opfuncid = pg_sys::Oid::from(pg_sys::F_ARRAYCONTAINS);
            op.cast()
        }
        Filter::Is(c) => col(c),
        Filter::Not(f) => pg_sys::make_notclause(build(f, column).cast()).cast(),
        Filter::And(parts) | Filter::Or(parts) => {
            let kind = if matches!(filter, Filter::And(_)) { pg_sys::BoolExprType::AND_EXPR } else { pg_sys::BoolExprType::OR_EXPR };
            let mut list = PgList::<pg_sys::Node>::new();
            for p in parts {
                list.push(build(p, column));
            }
            pg_sys::makeBoolExpr(kind, list.into_pg(), -1).cast()
        }
    }
}

/// A boolean, a bigint, a bigint[] or a NULL bigint constant.
pub enum Constant<'a> {
    Bool(bool),
    Int8(i64),
    Int8Array(&'a [i64]),
    NullInt8,
}

pub fn constant(c: Constant<'_>) -> Node {
    // SAFETY: builds a new Const node (and array) in the current memory context.
    unsafe { make(c) }
}

/// # Safety
/// Called where PostgreSQL may allocate: in a planning, or any function call.
unsafe fn make(c: Constant<'_>) -> Node {
    match c {
        Constant::Bool(b) => pg_sys::makeBoolConst(b, false),
        Constant::Int8(v) => pg_sys::makeConst(pg_sys::INT8OID, -1, pg_sys::InvalidOid, 8, pg_sys::Datum::from(v), false, true).cast(),
        Constant::Int8Array(values) => {
            let mut datums: Vec<pg_sys::Datum> = values.iter().map(|&v| pg_sys::Datum::from(v)).collect();
            let array = pg_sys::construct_array(datums.as_mut_ptr(), datums.len() as i32, pg_sys::INT8OID, 8, true, b'd' as c_char);
            pg_sys::makeConst(pg_sys::INT8ARRAYOID, -1, pg_sys::InvalidOid, -1, pg_sys::Datum::from(array), false, false).cast()
        }
        Constant::NullInt8 => pg_sys::makeNullConst(pg_sys::INT8OID, -1, pg_sys::InvalidOid).cast(),
    }
}

/// `a OR b OR ...` of expressions: `false` for none, the one for one.
pub fn any(parts: Vec<Node>) -> Node {
    if parts.len() < 2 {
        return parts.into_iter().next().unwrap_or_else(|| constant(Constant::Bool(false)));
    }
    let mut list = PgList::<pg_sys::Node>::new();
    for p in parts {
        list.push(p);
    }
    // SAFETY: a new BoolExpr over valid expressions, in the current memory context.
    unsafe { pg_sys::makeBoolExpr(pg_sys::BoolExprType::OR_EXPR, list.into_pg(), -1).cast() }
}

/// A call of `function` (returning boolean) with a copy of `args`.
pub fn call(function: pg_sys::Oid, args: *mut pg_sys::List) -> Node {
    // SAFETY: `args` is a valid argument list of the planning in progress; the call gets its
    // own copy of it.
    unsafe {
        pg_sys::makeFuncExpr(
            function,
            pg_sys::BOOLOID,
            pg_sys::copyObjectImpl(args.cast()).cast(),
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
        )
        .cast()
    }
}
