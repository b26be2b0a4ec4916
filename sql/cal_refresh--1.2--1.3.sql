/* cal_refresh--1.2--1.3.sql: tools for DBAs */

\echo Use "ALTER EXTENSION cal_refresh UPDATE TO '1.3'" to load this file. \quit
