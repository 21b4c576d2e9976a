mod assignments;
mod concurrency;
mod due;
mod errors;
mod schema;
mod send;
mod summary;
mod users;
