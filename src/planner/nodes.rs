//! Expression nodes for the planner: the engine's `Filter` as an expression over a call's
//! argument expressions, and the few other nodes the support functions hand back. Every node
//! is allocated in the current memory context, the planning's, as PostgreSQL's own are.

use std::ffi::c_char;

use crm_model::Filter;

use crate::enforce::restrictions::Kind;
use pgrx::{pg_sys, PgBox, PgList};

/// `int8 = int8` (pg_operator.dat: Int8EqualOperator).
const INT8_EQ_OPERATOR: pg_sys::Oid = pg_sys::Oid::from_u32(410);

/// A node of the expression being built.
pub type Node = *mut pg_sys::Node;

/// `filter` as an expression, with each column read from the expression `column` gives for
/// it (a call argument or a table column, copied wherever it is used); `None` if `filter`
/// reads a column `column` does not know, or compares one as text whose type restriction
/// rules cannot compare, and then the call is kept. Id columns are bigint, id lists bigint[],
/// flags boolean: the policy functions' signatures say so.
pub fn filter(filter: &Filter, column: &impl Fn(&str) -> Option<Node>) -> Option<Node> {
    // Every column first: building allocates, and a missing column must not leave half a tree.
    let columns: Option<Vec<(&str, Node)>> = filter.columns().into_iter().map(|c| Some((c, column(c)?))).collect();
    let columns = columns?;
    if !texts_comparable(filter, &columns) {
        return None;
    }
    let column = |c: &str| columns.iter().find(|(name, _)| *name == c).map(|(_, node)| *node).expect("every column was found");
    // SAFETY: the column expressions are valid nodes of the planning in progress; every node
    // built here is new, and every column expression is copied before it is placed.
    Some(unsafe { build(filter, &column) })
}

/// Whether every column `filter` compares as text is of a type restriction rules can compare,
/// under a deterministic collation: under another, `=` would admit values whose text differs
/// (red team of issue 25: a column retyped while a rule was added), so the call is kept and
/// compares the text itself.
fn texts_comparable(filter: &Filter, columns: &[(&str, Node)]) -> bool {
    // SAFETY: `node` is a valid expression of the planning in progress; the collation lookup
    // reads the syscache.
    let deterministic = |node: Node| unsafe {
        let collation = pg_sys::exprCollation(node);
        collation == pg_sys::InvalidOid || pg_sys::get_collation_isdeterministic(collation)
    };
    match filter {
        Filter::OneOf(c, _) => columns.iter().any(|(name, node)| name == c && kind_of(*node).is_some() && deterministic(*node)),
        Filter::Not(f) => texts_comparable(f, columns),
        Filter::And(parts) | Filter::Or(parts) => parts.iter().all(|p| texts_comparable(p, columns)),
        _ => true,
    }
}

fn kind_of(node: Node) -> Option<Kind> {
    // SAFETY: `node` is a valid expression of the planning in progress.
    Kind::of(unsafe { pg_sys::exprType(node) })
}

/// # Safety
/// `column` must give valid expressions of the planning in progress, of the types `filter`
/// compares them as (bigint, bigint[], boolean; a type `Kind` knows for a text comparison).
unsafe fn build(filter: &Filter, column: &impl Fn(&str) -> Node) -> Node {
    let col = |c: &str| pg_sys::copyObjectImpl(column(c).cast()).cast::<pg_sys::Node>();
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
        // `column = ANY('{...}')` in the column's own type (varchar as text), with the values
        // whose text that type writes exactly (`restrictions::Kind`); none left is `false`.
        Filter::OneOf(c, values) => {
            let expr = col(c);
            let kind = kind_of(expr).expect("checked by texts_comparable");
            let mut datums: Vec<pg_sys::Datum> = values.iter().filter_map(|v| kind.datum(v)).collect();
            if datums.is_empty() {
                return make(Constant::Bool(false));
            }
            let collation = pg_sys::exprCollation(expr);
            let operand = if kind == Kind::Varchar {
                pg_sys::makeRelabelType(expr.cast(), pg_sys::TEXTOID, -1, collation, pg_sys::CoercionForm::COERCE_IMPLICIT_CAST).cast()
            } else {
                expr
            };
            let (array_type, len, byval, align) = kind.array();
            let array = pg_sys::construct_array(datums.as_mut_ptr(), datums.len() as i32, kind.compared_as(), len.into(), byval, align as c_char);
            let (op, func) = kind.equality();
            let mut saop = PgBox::<pg_sys::ScalarArrayOpExpr>::alloc_node(pg_sys::NodeTag::T_ScalarArrayOpExpr);
            saop.opno = op;
            saop.opfuncid = func;
            saop.useOr = true;
            saop.inputcollid = collation;
            let mut args = PgList::<pg_sys::Node>::new();
            args.push(operand);
            args.push(pg_sys::makeConst(array_type, -1, pg_sys::InvalidOid, -1, pg_sys::Datum::from(array), false, false).cast());
            saop.args = args.into_pg();
            saop.location = -1;
            saop.into_pg().cast()
        }
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
