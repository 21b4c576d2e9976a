mod assignments;
mod errors;
mod schema;
mod users;
