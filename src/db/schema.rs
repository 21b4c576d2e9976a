// @generated automatically by Diesel CLI.

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    assignments (id) {
        id -> Uuid,
        title -> Text,
        description -> Nullable<Text>,
        student_id -> Uuid,
        due_at -> Timestamptz,
        completed -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        metadata -> Nullable<Jsonb>,
        external_id -> Nullable<Text>,
        feed -> Nullable<Text>,
        previous_due_at -> Nullable<Timestamptz>,
        cutoff -> Nullable<Timestamptz>,
        course -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    bounce_reports (id) {
        id -> Uuid,
        report_key -> Text,
        kind -> Text,
        verified -> Bool,
        reason -> Nullable<Text>,
        to_email -> Nullable<Text>,
        reminder_id -> Nullable<Uuid>,
        summary_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        source_file -> Nullable<Text>,
        contact_message_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    contact_messages (id) {
        id -> Uuid,
        kind -> Text,
        guardian_id -> Nullable<Uuid>,
        teacher_id -> Nullable<Uuid>,
        reminder_id -> Nullable<Uuid>,
        period -> Text,
        message_key -> Text,
        scheduled_for -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        claimed_until -> Nullable<Timestamptz>,
        claimed_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    daily_summaries (id) {
        id -> Uuid,
        user_id -> Uuid,
        local_date -> Date,
        scheduled_for -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        claimed_until -> Nullable<Timestamptz>,
        claimed_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    former_emails (user_id, email) {
        user_id -> Uuid,
        email -> Text,
        replaced_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    guardian_students (guardian_id, student_id) {
        guardian_id -> Uuid,
        student_id -> Uuid,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    guardians (id) {
        id -> Uuid,
        email -> Text,
        name -> Nullable<Text>,
        timezone -> Text,
        frequency -> Text,
        weekday -> Int4,
        hour -> Int4,
        contact_opt_out -> Bool,
        opt_out_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        locale -> Nullable<Text>,
        send_window -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    milestones (name) {
        name -> Text,
        at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    reminders (id) {
        id -> Uuid,
        assignment_id -> Uuid,
        reminder_type -> Text,
        scheduled_for -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        claimed_until -> Nullable<Timestamptz>,
        claimed_by -> Nullable<Uuid>,
        priority -> Int4,
        due_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    send_caps (window_start) {
        window_start -> Timestamptz,
        used -> Int4,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    send_logs (id) {
        id -> Uuid,
        reminder_id -> Nullable<Uuid>,
        assignment_id -> Nullable<Uuid>,
        to_email -> Text,
        from_inbox -> Text,
        message_id -> Nullable<Text>,
        status -> Text,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        summary_id -> Nullable<Uuid>,
        contact_message_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    teacher_courses (teacher_id, course) {
        teacher_id -> Uuid,
        course -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    teachers (id) {
        id -> Uuid,
        email -> Text,
        name -> Nullable<Text>,
        timezone -> Text,
        weekday -> Int4,
        hour -> Int4,
        contact_opt_out -> Bool,
        opt_out_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        locale -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    user_preferences (user_id) {
        user_id -> Uuid,
        daily_summary -> Bool,
        summary_hour -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        reminder_types -> Nullable<Text>,
        muted_types -> Nullable<Text>,
        summary_weekday -> Nullable<Int4>,
        max_per_day -> Nullable<Int4>,
        send_window -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Date, Int4, Nullable, Text};
    use crate::db::types::sql::*;

    users (id) {
        id -> Uuid,
        email -> Text,
        name -> Nullable<Text>,
        timezone -> Nullable<Text>,
        contact_opt_out -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        opt_out_reason -> Nullable<Text>,
        locale -> Nullable<Text>,
    }
}

diesel::joinable!(assignments -> users (student_id));
diesel::joinable!(bounce_reports -> contact_messages (contact_message_id));
diesel::joinable!(bounce_reports -> daily_summaries (summary_id));
diesel::joinable!(contact_messages -> guardians (guardian_id));
diesel::joinable!(contact_messages -> reminders (reminder_id));
diesel::joinable!(contact_messages -> teachers (teacher_id));
diesel::joinable!(bounce_reports -> reminders (reminder_id));
diesel::joinable!(daily_summaries -> users (user_id));
diesel::joinable!(former_emails -> users (user_id));
diesel::joinable!(guardian_students -> guardians (guardian_id));
diesel::joinable!(guardian_students -> users (student_id));
diesel::joinable!(reminders -> assignments (assignment_id));
diesel::joinable!(send_logs -> assignments (assignment_id));
diesel::joinable!(send_logs -> contact_messages (contact_message_id));
diesel::joinable!(send_logs -> daily_summaries (summary_id));
diesel::joinable!(send_logs -> reminders (reminder_id));
diesel::joinable!(teacher_courses -> teachers (teacher_id));
diesel::joinable!(user_preferences -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    assignments,
    bounce_reports,
    contact_messages,
    daily_summaries,
    former_emails,
    guardian_students,
    guardians,
    milestones,
    reminders,
    send_caps,
    send_logs,
    teacher_courses,
    teachers,
    user_preferences,
    users,
);
