//! The one query behind the fleet page and `GET /api/v1/agents`: agents
//! filtered by text and status, sorted, optionally paged, and the count of
//! agents per status. It reads the `agents` table and writes nothing; it
//! knows no HTTP, no HTML and no roles.

use std::collections::BTreeMap;

use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::db::entities::agent;

/// The statuses an agent row can have, in the order pages show them.
pub const STATUSES: &[&str] = &["online", "offline", "pending", "revoked", "rejected"];

/// Rows per page when a caller pages without saying how many.
pub const PER_PAGE: u64 = 50;

/// The most rows one page may ask for.
pub const MAX_PER_PAGE: u64 = 500;

/// Which agents, in which order.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Matches a hostname or a label containing it, or an id starting with
    /// it; blank means every agent.
    pub text: String,
    /// One of [`STATUSES`]; `None` means any status.
    pub status: Option<String>,
    /// `hostname` (default), `status`, `last_seen` or `os`.
    pub sort: Sort,
    /// Descending instead of ascending.
    pub desc: bool,
}

/// The column a listing is sorted by (then by id, so pages are stable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    #[default]
    Hostname,
    Status,
    LastSeen,
    Os,
}

impl Sort {
    /// The sort a query-string value names; unknown names are `None`.
    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "hostname" => Sort::Hostname,
            "status" => Sort::Status,
            "last_seen" => Sort::LastSeen,
            "os" => Sort::Os,
            _ => return None,
        })
    }

    fn column(self) -> agent::Column {
        match self {
            Sort::Hostname => agent::Column::Hostname,
            Sort::Status => agent::Column::Status,
            Sort::LastSeen => agent::Column::LastSeen,
            Sort::Os => agent::Column::Os,
        }
    }
}

/// One page of agents.
#[derive(Debug)]
pub struct Listing {
    pub rows: Vec<agent::Model>,
    /// Agents matching the filter, on all pages.
    pub total: u64,
    /// 1-based page number actually shown (clamped to `1..=pages`).
    pub page: u64,
    /// Number of pages (at least 1).
    pub pages: u64,
}

/// The agents matching `f`; with `page = Some((n, per_page))` only page `n`
/// (1-based, clamped to the last page) of `per_page` rows, with `None` all of
/// them on one page. `per_page` must be at least 1.
pub async fn list(
    db: &DatabaseConnection,
    f: &Filter,
    page: Option<(u64, u64)>,
) -> Result<Listing, DbErr> {
    // Decommissioned hosts are history, not fleet (`inventory`).
    let mut cond = Condition::all().add(crate::inventory::store::not_decommissioned());
    if let Some(s) = f.status.as_deref().filter(|s| STATUSES.contains(s)) {
        cond = cond.add(agent::Column::Status.eq(s));
    }
    let text = f.text.trim();
    if !text.is_empty() {
        cond = cond.add(
            Condition::any()
                .add(agent::Column::Hostname.contains(text))
                .add(agent::Column::DisplayName.contains(text))
                .add(agent::Column::Id.starts_with(text))
                .add(agent::Column::Labels.contains(text)),
        );
    }
    let base = agent::Entity::find().filter(cond);
    let total = base.clone().count(db).await?;
    let sel = if f.desc {
        base.order_by_desc(f.sort.column())
    } else {
        base.order_by_asc(f.sort.column())
    }
    .order_by_asc(agent::Column::Id);
    let Some((page_no, per_page)) = page else {
        let rows = sel.all(db).await?;
        return Ok(Listing {
            rows,
            total,
            page: 1,
            pages: 1,
        });
    };
    let per_page = per_page.max(1);
    let pages = total.div_ceil(per_page).max(1);
    let page_no = page_no.clamp(1, pages);
    let rows = sel
        .offset((page_no - 1) * per_page)
        .limit(per_page)
        .all(db)
        .await?;
    Ok(Listing {
        rows,
        total,
        page: page_no,
        pages,
    })
}

/// How many agents have each status (statuses with none are absent).
pub async fn status_counts(db: &DatabaseConnection) -> Result<BTreeMap<String, i64>, DbErr> {
    let rows: Vec<(String, i64)> = agent::Entity::find()
        .select_only()
        .column(agent::Column::Status)
        .column_as(agent::Column::Id.count(), "n")
        .filter(crate::inventory::store::not_decommissioned())
        .group_by(agent::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}
