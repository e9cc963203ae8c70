//! Restriction rules at run time and at plan time (DESIGN §9): which records of a protected
//! table the acting user may reach at all, by the table's own columns, as the engine's
//! `Filter` (`crm.within_restrictions`, the `crm_restrict` policy of every protected table).
//!
//! A rule compares `column::text` with its values. The planner instead writes
//! `column = ANY('{...}')` with constants of the column's own type, which an index on the
//! column serves. The two agree only where a type's equality is the equality of its text, so
//! the column types are limited to those (`Kind`; sql/guard.sql's
//! `crm.restriction_column_problem` says the same in SQL), and a value that its type would
//! write differently (`007` for an integer, `TRUE` for a boolean) matches nothing, exactly as
//! its text would not.

use std::ffi::CStr;
use std::rc::Rc;

use crm_model::{Filter, Row, Value};
use pgrx::prelude::*;
use pgrx::{pg_sys, AnyElement, FromDatum};

use super::opened;
use crate::catalog::tables::row_type_of;
use crate::error::CrmResult;
use crate::session::cache;
use crate::session::identity;

/// The column types a restriction rule can compare (text and varchar share text's equality).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Text,
    Varchar,
    Int2,
    Int4,
    Int8,
    Bool,
    Uuid,
}

impl Kind {
    pub fn of(typ: pg_sys::Oid) -> Option<Kind> {
        Some(match typ {
            pg_sys::TEXTOID => Kind::Text,
            pg_sys::VARCHAROID => Kind::Varchar,
            pg_sys::INT2OID => Kind::Int2,
            pg_sys::INT4OID => Kind::Int4,
            pg_sys::INT8OID => Kind::Int8,
            pg_sys::BOOLOID => Kind::Bool,
            pg_sys::UUIDOID => Kind::Uuid,
            _ => return None,
        })
    }

    /// The type the comparison is made in (varchar is compared as text).
    pub fn compared_as(self) -> pg_sys::Oid {
        match self {
            Kind::Text | Kind::Varchar => pg_sys::TEXTOID,
            Kind::Int2 => pg_sys::INT2OID,
            Kind::Int4 => pg_sys::INT4OID,
            Kind::Int8 => pg_sys::INT8OID,
            Kind::Bool => pg_sys::BOOLOID,
            Kind::Uuid => pg_sys::UUIDOID,
        }
    }

    /// The `=` operator of `compared_as` and its function (pg_operator.dat, pg_proc.dat).
    pub fn equality(self) -> (pg_sys::Oid, pg_sys::Oid) {
        let (op, func) = match self {
            Kind::Text | Kind::Varchar => (98, pg_sys::F_TEXTEQ),
            Kind::Int2 => (94, pg_sys::F_INT2EQ),
            Kind::Int4 => (96, pg_sys::F_INT4EQ),
            Kind::Int8 => (410, pg_sys::F_INT8EQ),
            Kind::Bool => (91, pg_sys::F_BOOLEQ),
            Kind::Uuid => (2972, pg_sys::F_UUID_EQ),
        };
        (pg_sys::Oid::from(op), pg_sys::Oid::from(func))
    }

    /// The array type of `compared_as`, and its element's length, by-value flag and alignment.
    pub fn array(self) -> (pg_sys::Oid, i16, bool, u8) {
        match self {
            Kind::Text | Kind::Varchar => (pg_sys::TEXTARRAYOID, -1, false, b'i'),
            Kind::Int2 => (pg_sys::INT2ARRAYOID, 2, true, b's'),
            Kind::Int4 => (pg_sys::INT4ARRAYOID, 4, true, b'i'),
            Kind::Int8 => (pg_sys::INT8ARRAYOID, 8, true, b'd'),
            Kind::Bool => (pg_sys::BOOLARRAYOID, 1, true, b'c'),
            Kind::Uuid => (pg_sys::UUIDARRAYOID, 16, false, b'c'),
        }
    }

    /// The value whose text (`value::text`) is exactly `text`, as a datum of `compared_as`
    /// allocated in the current memory context; None when no value of the type has that text.
    pub fn datum(self, text: &str) -> Option<pg_sys::Datum> {
        fn canonical<T: std::str::FromStr + ToString>(text: &str) -> Option<T> {
            text.parse::<T>().ok().filter(|v| v.to_string() == text)
        }
        Some(match self {
            Kind::Text | Kind::Varchar => {
                // SAFETY: copies the bytes into a new text value (text cannot hold NUL, and
                // values come from a text[] column).
                unsafe { pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(text.as_ptr().cast(), text.len() as i32)) }
            }
            Kind::Int2 => pg_sys::Datum::from(canonical::<i16>(text)?),
            Kind::Int4 => pg_sys::Datum::from(canonical::<i32>(text)?),
            Kind::Int8 => pg_sys::Datum::from(canonical::<i64>(text)?),
            Kind::Bool => pg_sys::Datum::from(match text {
                "true" => true,
                "false" => false,
                _ => return None,
            }),
            Kind::Uuid => {
                let bytes = uuid_bytes(text)?;
                // SAFETY: a uuid datum points to its 16 bytes, here newly allocated.
                unsafe {
                    let p = pg_sys::palloc(16).cast::<u8>();
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, 16);
                    pg_sys::Datum::from(p)
                }
            }
        })
    }

    /// A non-null value of the column's type as `value::text` writes it.
    ///
    /// # Safety
    /// `d` must be a non-null datum of a type of this kind.
    pub unsafe fn text(self, d: pg_sys::Datum) -> Option<String> {
        Some(match self {
            Kind::Text | Kind::Varchar => String::from_datum(d, false)?,
            Kind::Int2 => i16::from_datum(d, false)?.to_string(),
            Kind::Int4 => i32::from_datum(d, false)?.to_string(),
            Kind::Int8 => i64::from_datum(d, false)?.to_string(),
            Kind::Bool => if bool::from_datum(d, false)? { "true" } else { "false" }.to_string(),
            Kind::Uuid => {
                let b = std::slice::from_raw_parts(d.cast_mut_ptr::<u8>(), 16);
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
            }
        })
    }
}

/// The 16 bytes of a uuid written as PostgreSQL writes one (lower-case hex, 8-4-4-4-12).
fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let b = text.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: Vec<u8> = b.iter().copied().filter(|&c| c != b'-').collect();
    if hex.len() != 32 || !hex.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Which rows of `tbl` the acting user may reach at all under the restriction rules of its
/// module. Everything for crm_access's own statements with the rows opened; nothing on a broken
/// catalog or for an unregistered table. Someone who cannot act is left to the owner policies,
/// which give them no row and refuse their writes with the reason: a second constant `false`
/// beside theirs would only cost the planner its one-time filter.
pub fn restriction(tbl: pg_sys::Oid, planning: bool) -> CrmResult<Rc<Filter>> {
    if opened::rows_opened(tbl) {
        return Ok(Rc::new(Filter::Const(true)));
    }
    // On a broken catalog the owner policies beside this one warn and fail closed (and refuse
    // writes); this one only fails closed with them.
    let Ok(m) = cache::current(planning) else {
        crate::session::plans::failed_closed();
        return Ok(Rc::new(Filter::Const(false)));
    };
    let Some(module) = m.module_of(tbl) else { return Ok(Rc::new(Filter::Const(false))) };
    Ok(match identity::acting_user(&m)? {
        Ok(u) => m.restriction_filter(u.owner_id, tbl, module),
        Err(_) => Rc::new(Filter::Const(true)),
    })
}

/// A row of a protected table, as restriction rules read it: the named columns' text.
struct TableRow(Vec<(String, Option<String>)>);

impl Row for TableRow {
    fn value(&self, column: &str) -> Option<Value<'_>> {
        self.0.iter().find(|(c, _)| c == column).map(|(_, v)| Value::Text(v.as_deref()))
    }
}

/// `row`, a composite value of `tbl`'s row type, with the text of each of `columns`; a column
/// the row type lacks, or of a type rules cannot compare, is left out (and so refuses).
///
/// # Safety
/// `row` must be a non-null composite datum of type `typ`.
unsafe fn table_row(row: pg_sys::Datum, typ: pg_sys::Oid, columns: &[&str]) -> TableRow {
    let header = pg_sys::pg_detoast_datum(row.cast_mut_ptr()) as pg_sys::HeapTupleHeader;
    let desc = pg_sys::lookup_rowtype_tupdesc(typ, -1);
    let mut tuple = pg_sys::HeapTupleData {
        t_len: pgrx::varlena::varsize(header.cast()) as u32,
        t_data: header,
        ..Default::default()
    };
    let mut out = Vec::new();
    let tupdesc = pgrx::PgTupleDesc::from_pg_unchecked(desc);
    for (i, att) in tupdesc.iter().enumerate() {
        let name = CStr::from_ptr(att.attname.data.as_ptr()).to_string_lossy();
        if att.attisdropped || !columns.contains(&name.as_ref()) {
            continue;
        }
        let Some(kind) = Kind::of(att.atttypid) else { continue };
        let mut isnull = false;
        let d = pg_sys::heap_getattr(&mut tuple, i as i32 + 1, desc, &mut isnull);
        let text = if isnull { None } else { kind.text(d) };
        out.push((name.into_owned(), text));
    }
    drop(tupdesc);
    pg_sys::DecrTupleDescRefCount(desc);
    TableRow(out)
}

/// The policy function of `crm_restrict`: whether the acting user may reach `row` of `tbl` at
/// all under the restriction rules. The planner replaces the call (`within_restrictions_support`);
/// as written it reads the row. A row of any other type than `tbl`'s refuses.
#[pg_extern(
    sql = "CREATE FUNCTION crm.within_restrictions(tbl regclass, \"row\" anyelement) RETURNS boolean
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.within_restrictions_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::within_restrictions_support]
)]
fn within_restrictions(tbl: Option<pg_sys::Oid>, row: Option<AnyElement>) -> bool {
    let (Some(tbl), Some(row)) = (tbl, row) else { return false };
    let typ = row_type_of(tbl);
    if typ == pg_sys::InvalidOid || row.oid() != typ {
        return false;
    }
    let filter = restriction(tbl, false).unwrap_or_else(|e| e.raise());
    match &*filter {
        Filter::Const(b) => *b,
        f => {
            // SAFETY: a non-null composite datum of `tbl`'s row type, as just checked.
            let row = unsafe { table_row(row.datum(), typ, &f.columns()) };
            f.admits(&row)
        }
    }
}
