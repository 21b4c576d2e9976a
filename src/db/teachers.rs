//! Queries on `teachers` and `teacher_courses`: the teachers, and the
//! courses each of them teaches.

use anyhow::Context;
use diesel::prelude::*;
use serde::Serialize;

use super::erasure::{self, Erased, Scrubbed, Theirs};
use super::schema::{contact_messages, teacher_courses, teachers};
use super::types::{Id, OptOutReason, Timestamp};
use super::{Db, with_conn};
use crate::error::invalid;

/// A new teacher's report time when none is given (the columns' defaults):
/// Friday afternoon, to look back on the week.
pub const DEFAULT_WEEKDAY: i32 = 5;
pub const DEFAULT_HOUR: i32 = 16;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = teachers, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_default_value = false)]
pub struct Teacher {
    pub id: Id,
    pub email: String,
    pub name: Option<String>,
    pub timezone: String,
    /// ISO: Monday 1 to Sunday 7.
    pub weekday: i32,
    /// The local hour, 0 to 23.
    pub hour: i32,
    pub contact_opt_out: bool,
    pub opt_out_reason: Option<OptOutReason>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Their language (BCP 47); `None`, English.
    pub locale: Option<String>,
}

/// What `teacher add` or an import row sets; `None` leaves a teacher's
/// value as it is, or gives a new teacher the default.
#[derive(Debug, Default, Clone)]
pub struct TeacherFields {
    /// `Some(None)` removes the name.
    pub name: Option<Option<String>>,
    pub timezone: Option<String>,
    pub weekday: Option<i32>,
    pub hour: Option<i32>,
    /// `Some(None)` removes the language.
    pub locale: Option<Option<String>>,
}

impl TeacherFields {
    /// `teacher` with these fields set.
    fn applied_to(&self, teacher: &Teacher) -> Teacher {
        Teacher {
            name: self.name.clone().unwrap_or_else(|| teacher.name.clone()),
            timezone: self.timezone.clone().unwrap_or_else(|| teacher.timezone.clone()),
            weekday: self.weekday.unwrap_or(teacher.weekday),
            hour: self.hour.unwrap_or(teacher.hour),
            locale: self.locale.clone().unwrap_or_else(|| teacher.locale.clone()),
            ..teacher.clone()
        }
    }
}

/// A teacher with the codes of the courses they teach, sorted.
#[derive(Debug, Clone, Serialize)]
pub struct Teaching {
    #[serde(flatten)]
    pub teacher: Teacher,
    pub courses: Vec<String>,
}

/// What [`teach`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taught {
    /// The teacher is new, and now teaches the course.
    NewTeacher,
    /// A teacher already here now teaches the course too (and the fields
    /// given were set).
    NewCourse,
    /// The teacher taught the course already; a field given changed.
    Updated,
    /// The teacher taught the course already, with these very fields.
    Unchanged,
}

pub fn find_by_email(db: &mut Db, email: &str) -> anyhow::Result<Option<Teacher>> {
    with_conn!(db, conn => teachers::table
        .filter(teachers::email.eq(email))
        .select(Teacher::as_select())
        .first(conn)
        .optional())
    .context("cannot look up the teacher")
}

/// Finds a teacher or reports the email as bad input.
pub fn require_by_email(db: &mut Db, email: &str) -> anyhow::Result<Teacher> {
    find_by_email(db, email)?.ok_or_else(|| invalid(format!("no teacher has the email `{email}`")))
}

/// Sets a teacher's own preferences (the preferences page); returns them.
pub fn set_preferences(db: &mut Db, id: Id, fields: &TeacherFields, now: Timestamp) -> anyhow::Result<Teacher> {
    let stored = with_conn!(db, conn => teachers::table.find(id).select(Teacher::as_select()).first(conn))
        .context("cannot read the teacher")?;
    update(db, &fields.applied_to(&stored), now)
}

/// Writes every field a teacher's own settings cover, as `wanted` has them.
fn update(db: &mut Db, wanted: &Teacher, now: Timestamp) -> anyhow::Result<Teacher> {
    with_conn!(db, conn => diesel::update(teachers::table.find(wanted.id))
        .set((
            teachers::name.eq(&wanted.name),
            teachers::timezone.eq(&wanted.timezone),
            teachers::weekday.eq(wanted.weekday),
            teachers::hour.eq(wanted.hour),
            teachers::locale.eq(&wanted.locale),
            teachers::updated_at.eq(now),
        ))
        .returning(Teacher::as_returning())
        .get_result(conn))
    .context("cannot change the teacher")
}

/// Makes `email` a teacher of `course`: a new teacher gets `fields` and the
/// defaults, a teacher already here gets the fields given. Reads, then
/// writes: call it inside [`Db::in_write_transaction`], so that no other
/// writer comes in between.
pub fn teach(
    db: &mut Db,
    course: &str,
    email: &str,
    fields: &TeacherFields,
    now: Timestamp,
) -> anyhow::Result<(Teacher, Taught)> {
    let (teacher, mut taught) = match find_by_email(db, email)? {
        None => {
            let fresh = fields.applied_to(&Teacher {
                id: Id::new(),
                email: email.to_string(),
                name: None,
                timezone: "UTC".to_string(),
                weekday: DEFAULT_WEEKDAY,
                hour: DEFAULT_HOUR,
                contact_opt_out: false,
                opt_out_reason: None,
                created_at: now,
                updated_at: now,
                locale: None,
            });
            with_conn!(db, conn => diesel::insert_into(teachers::table).values(&fresh).execute(conn))
                .context("cannot add the teacher")?;
            (fresh, Taught::NewTeacher)
        }
        Some(stored) => {
            let wanted = fields.applied_to(&stored);
            if wanted == stored {
                (stored, Taught::Unchanged)
            } else {
                (update(db, &wanted, now)?, Taught::Updated)
            }
        }
    };
    let linked = with_conn!(db, conn => diesel::insert_into(teacher_courses::table)
        .values((teacher_courses::teacher_id.eq(teacher.id), teacher_courses::course.eq(course)))
        .on_conflict_do_nothing()
        .execute(conn))
    .context("cannot link the teacher to the course")?;
    if linked == 1 && taught != Taught::NewTeacher {
        taught = Taught::NewCourse;
    }
    Ok((teacher, taught))
}

/// Every teacher, or those who teach `course`, by email, each with all the
/// courses they teach.
pub fn list(db: &mut Db, course: Option<&str>) -> anyhow::Result<Vec<Teaching>> {
    // A course has a few teachers: their ids make a short list.
    let teaching: Option<Vec<Id>> = match course {
        Some(course) => Some(
            with_conn!(db, conn => teacher_courses::table
                .filter(teacher_courses::course.eq(course))
                .select(teacher_courses::teacher_id)
                .load(conn))
            .context("cannot list the course's teachers")?,
        ),
        None => None,
    };
    let (found, links) = with_conn!(db, conn => {
        let mut chosen = teachers::table.select(Teacher::as_select()).order(teachers::email).into_boxed();
        let mut links = teacher_courses::table
            .select((teacher_courses::teacher_id, teacher_courses::course))
            .order(teacher_courses::course)
            .into_boxed();
        if let Some(teaching) = &teaching {
            chosen = chosen.filter(teachers::id.eq_any(teaching));
            links = links.filter(teacher_courses::teacher_id.eq_any(teaching));
        }
        chosen
            .load::<Teacher>(conn)
            .and_then(|found| Ok((found, links.load::<(Id, String)>(conn)?)))
    })
    .context("cannot list teachers")?;
    let mut courses: std::collections::HashMap<Id, Vec<String>> = std::collections::HashMap::new();
    for (teacher, course) in links {
        courses.entry(teacher).or_default().push(course);
    }
    Ok(found
        .into_iter()
        .map(|teacher| Teaching {
            courses: courses.remove(&teacher.id).unwrap_or_default(),
            teacher,
        })
        .collect())
}

/// The teacher with the courses they teach.
pub fn teaching(db: &mut Db, teacher: Teacher) -> anyhow::Result<Teaching> {
    let courses = with_conn!(db, conn => teacher_courses::table
        .filter(teacher_courses::teacher_id.eq(teacher.id))
        .select(teacher_courses::course)
        .order(teacher_courses::course)
        .load::<String>(conn))
    .context("cannot list the teacher's courses")?;
    Ok(Teaching { teacher, courses })
}

/// Unlinks `teacher` from `course`; `false` when they did not teach it.
pub fn stop_teaching(db: &mut Db, teacher: Id, course: &str) -> anyhow::Result<bool> {
    let removed = with_conn!(db, conn => diesel::delete(teacher_courses::table.find((teacher, course.to_string())))
        .execute(conn))
    .context("cannot unlink the teacher")?;
    Ok(removed == 1)
}

/// Erases a teacher with every link of theirs (the links and their
/// messages cascade), in one transaction, after taking their address out of
/// the send logs and bounce reports kept (see [`erasure::scrub_address`]).
pub fn forget(db: &mut Db, teacher: &Teacher) -> anyhow::Result<Erased> {
    let stand_in = erasure::stand_in();
    db.in_write_transaction(|db| {
        let links: i64 = with_conn!(db, conn => teacher_courses::table
            .filter(teacher_courses::teacher_id.eq(teacher.id))
            .count()
            .get_result(conn))?;
        let scrubbed = scrub_traces(db, teacher.id, &teacher.email, &stand_in)?;
        with_conn!(db, conn => diesel::delete(teachers::table.find(teacher.id)).execute(conn))?;
        Ok(Erased {
            links,
            stand_in: stand_in.clone(),
            scrubbed,
        })
    })
    .context("cannot forget the teacher")
}

/// Takes the teacher's address out of the send logs and bounce reports
/// kept, `stand_in` in its place (only from what was sent to them as a
/// teacher when another role still has the address); call it inside the
/// erasure's transaction, before the teacher goes.
pub fn scrub_traces(db: &mut Db, teacher: Id, email: &str, stand_in: &str) -> anyhow::Result<Scrubbed> {
    let messages: Vec<Id> = with_conn!(db, conn => contact_messages::table
        .filter(contact_messages::teacher_id.eq(Some(teacher)))
        .select(contact_messages::id)
        .load(conn))
    .context("cannot list the teacher's messages")?;
    let theirs = Theirs {
        contact_messages: &messages,
        ..Theirs::default()
    };
    let held = erasure::contact_address(db, email)?;
    erasure::scrub_address(db, &[held], &theirs, stand_in)
}
